"""``cotdistill run``: every stage in order, skipping stages whose outputs are complete and current.

A stage is *current* when its stamp (``RUN/stages/<stage>.json``, written only after the stage finished)
records the same fingerprint as now: a hash of the config sections the stage reads plus the fingerprints of the
stages it reads from. Change a teacher and generation, filtering, training and evaluation re-run; change
``eval.max_new_tokens`` and only evaluation and the report do. An interrupted stage has no stamp and resumes
(generation and filtering continue from what they appended; training from its last checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError, StageIncomplete
from cotdistill.io import atomic_write_text
from cotdistill.rundir import RunDir


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: the config sections it reads, the stages it reads from, and how to run it."""

    name: str
    sections: tuple[str, ...]
    after: tuple[str, ...]
    run: Callable[[RunDir, RunConfig], Any]
    resets: tuple[str, ...] = ()  # run-relative outputs to clear when an unfinished earlier attempt had other inputs


def _questions(run: RunDir, cfg: RunConfig) -> Any:
    from cotdistill.stages.questions import write_questions

    return write_questions(run, cfg)


def _generate(run: RunDir, cfg: RunConfig) -> Any:
    from cotdistill.stages.generate import run_generate

    summary = run_generate(run, cfg)  # raises StageFailed (exit 3) when no request worked or a teacher cannot
    if summary.failed:
        raise StageIncomplete(
            f"generate: {summary.failed} request(s) failed after retries (see {run.generate_failures}); "
            "the finished paths are kept, re-run to retry the rest"
        )
    return summary


def _filter(run: RunDir, cfg: RunConfig) -> Any:
    from cotdistill.stages.filter import filter_run

    return filter_run(run, cfg)


def _train(run: RunDir, cfg: RunConfig) -> Any:
    from cotdistill.stages.train import train

    return train(run, cfg)


def _eval(run: RunDir, cfg: RunConfig) -> Any:
    from cotdistill.stages.eval import evaluate_run

    return evaluate_run(run, cfg)


def _report(run: RunDir, cfg: RunConfig) -> Any:
    from cotdistill.report import write_report

    return write_report(run)


STAGES: tuple[Stage, ...] = (
    Stage("questions", ("questions", "seed"), (), _questions),
    # the request cache keeps finished generations, so clearing paths.jsonl costs nothing but stale paths
    Stage("generate", ("teachers", "generate", "seed"), ("questions",), _generate, ("paths.jsonl",)),
    Stage("filter", ("filter", "teachers"), ("generate",), _filter, ("filtered.jsonl", "filter_stats.json")),
    Stage(
        "train",
        ("students", "train", "seed", "prompt"),
        ("filter",),
        _train,
        ("checkpoints", "students", "logs/train_metrics.jsonl", "logs/routing.jsonl", "logs/compact_weights.jsonl"),
    ),
    # the base rows' cache (eval/base/) stays: it is keyed by what it depends on, which is not training
    Stage(
        "eval",
        ("eval", "prompt"),
        ("train",),
        _eval,
        (
            "eval/metrics.json",
            "eval/outputs.jsonl",
            "eval/ensembles.jsonl",
            "eval/base_outputs.jsonl",
            "eval/probe_outputs.jsonl",
        ),
    ),  # fmt: skip
    Stage("report", (), ("eval",), _report),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    """The pipeline stage called ``name``."""
    return next(s for s in STAGES if s.name == name)


def fingerprint(stage: Stage, cfg: RunConfig, upstream: dict[str, str], run: RunDir | None = None) -> str:
    """Hash of what the stage reads: its config sections and its upstream stages' fingerprints; for imported
    questions (``questions.source: imported``) also the content of ``questions.jsonl``, so a re-import is seen."""
    data = cfg.model_dump(mode="json")
    payload = {"sections": {k: data.get(k) for k in stage.sections}, "after": {a: upstream[a] for a in stage.after}}
    if stage.name == "questions" and cfg.questions.source == "imported" and run is not None and run.questions.exists():
        payload["imported"] = hashlib.sha256(run.questions.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def read_stamp(run: RunDir, name: str) -> dict[str, Any] | None:
    """The stage's completion stamp, or None when it never finished (or the stamp is unreadable)."""
    p = run.stamp(name)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def plan(run: RunDir, cfg: RunConfig, force: tuple[str, ...] = ()) -> list[tuple[Stage, str, bool]]:
    """For each stage: (stage, fingerprint, up to date?). A forced or stale stage makes its dependants stale."""
    prints: dict[str, str] = {}
    stale: set[str] = set()
    out = []
    for st in STAGES:
        fp = fingerprint(st, cfg, prints, run)
        prints[st.name] = fp
        stamp = read_stamp(run, st.name)
        current = (
            stamp is not None
            and stamp.get("fingerprint") == fp
            and st.name not in force
            and not any(a in stale for a in st.after)
        )
        if not current:
            stale.add(st.name)
        out.append((st, fp, current))
    return out


def _begin(run: RunDir, st: Stage, fp: str, forced: bool, log: Callable[[str], None]) -> None:
    """Mark the stage started; outputs of an attempt with other inputs (or of a forced stage) are cleared."""
    started = run.started(st.name)
    previous = started.read_text(encoding="utf-8").strip() if started.exists() else None
    done = read_stamp(run, st.name)
    changed = (previous is not None and previous != fp) or (done is not None and done.get("fingerprint") != fp)
    if forced or changed:
        for rel in st.resets:
            target = run.root / rel
            if rel == "paths.jsonl":
                from cotdistill.stages.generate import drop_generated_paths

                drop_generated_paths(run)  # imported paths stay: nothing could write them again
            elif target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        log(f"{st.name}: {'forced' if forced else 'inputs changed'}: earlier outputs cleared, running")
    else:
        log(f"{st.name}: running")
    run.stamp(st.name).unlink(missing_ok=True)
    started.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, fp)


def _line(name: str, status: str, run: RunDir) -> str:
    from cotdistill.stages.describe import describe

    what = describe(name, run)
    return f"{name}: {status}" + (f"; {what}" if what else "")


def check_stage_names(force: tuple[str, ...] = (), until: str | None = None) -> None:
    """``--force`` and ``--until`` name stages (checked before the run directory is touched)."""
    unknown = [s for s in (*force, *([until] if until else [])) if s not in STAGE_NAMES]
    if unknown:
        raise CotdistillError(f"unknown stage(s): {', '.join(unknown)} (stages: {', '.join(STAGE_NAMES)})")


def run_pipeline(
    run: RunDir,
    cfg: RunConfig,
    force: tuple[str, ...] = (),
    until: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run the stages in order (up to ``until``), skipping current ones; returns stage -> 'ran' | 'skipped'."""
    check_stage_names(force, until)
    done: dict[str, str] = {}
    for st, fp, current in plan(run, cfg, force):
        if current:
            log(_line(st.name, "up to date, skipped", run))
            done[st.name] = "skipped"
        else:
            _begin(run, st, fp, st.name in force, log)
            t0 = time.perf_counter()
            st.run(run, cfg)
            secs = time.perf_counter() - t0
            stamp = {"stage": st.name, "fingerprint": fp, "seconds": round(secs, 2), "finished": time.time()}
            atomic_write_text(run.stamp(st.name), json.dumps(stamp, indent=2))
            log(_line(st.name, f"done in {secs:.1f}s", run))
            done[st.name] = "ran"
        if st.name == until:
            break
    return done
