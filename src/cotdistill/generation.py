"""The ``generate`` stage: teachers x styles x questions x samples -> ``RUN/paths.jsonl``, resumable.

Paths are appended as they arrive. A request cache (``RUN/cache/generate.jsonl``) keyed by (backend, model,
prompt, settings, sample) means a re-run or a resumed run never sends a finished request again; requests whose
path id is already in ``paths.jsonl`` are skipped outright. Requests that fail after all retries go to
``RUN/logs/generate_failures.jsonl`` (never to the paths) and are retried by the next run. Ctrl-C stops
cleanly: everything finished so far is kept. API keys never reach any file: only environment variable names.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cotdistill.config import RunConfig, TeacherConfig
from cotdistill.errors import ConfigError, CotdistillError
from cotdistill.faults import maybe_kill
from cotdistill.io import JsonlAppender, repair_torn_tail
from cotdistill.records import SCHEMA_VERSION, Path, Question, path_id, read_questions
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family
from cotdistill.teachers.base import Completion, GenRequest, TeacherBackend
from cotdistill.teachers.styles import Style, select_styles

CACHE_FILE = "generate.jsonl"
FAILURES_FILE = "generate_failures.jsonl"
# settings that change what a backend writes (operational knobs such as concurrency or timeouts do not)
_OUTPUT_SETTINGS = (
    "backend",
    "model",
    "base_url",
    "temperature",
    "top_p",
    "max_tokens",
    "send_seed",
    "n_per_request",
    "profile",
)


@dataclass
class TeacherSummary:
    """What one teacher's part of the stage did."""

    planned: int = 0
    existing: int = 0
    cached: int = 0
    completed: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class GenerateSummary:
    """Per-teacher counts plus whether the run was interrupted."""

    teachers: dict[str, TeacherSummary] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.teachers.values())

    def as_dict(self) -> dict[str, Any]:
        return {"interrupted": self.interrupted, "teachers": {k: vars(v) for k, v in self.teachers.items()}}


def request_seed(seed: int, pid: str) -> int:
    """A per-request seed that depends only on the run seed and the path id (not on order or batching)."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{pid}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def cache_key(teacher: TeacherConfig, req: GenRequest) -> str:
    """Hash of what determines a completion: backend, model, settings, the prompt, the sample and its seed."""
    settings = {k: getattr(teacher, k) for k in _OUTPUT_SETTINGS}
    if teacher.backend == "synthetic":
        settings["name"] = teacher.name  # synthetic teachers are seeded by name
    blob = json.dumps(
        {"settings": settings, "messages": req.messages, "sample": req.sample, "seed": req.seed},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _iter_json_lines(path: FsPath) -> Iterator[dict[str, Any]]:
    """Objects of a JSONL file (a torn tail was already repaired; a bad line is skipped, not fatal)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    yield obj


def existing_path_ids(paths_file: FsPath) -> set[str]:
    """Ids of the paths already written (read lightly: ids only)."""
    return {str(o["id"]) for o in _iter_json_lines(paths_file) if "id" in o}


def build_requests(
    teacher: TeacherConfig, questions: list[Question], styles: list[Style], samples: int, seed: int
) -> list[GenRequest]:
    """Every (question, style, sample) request of one teacher, in a stable order."""
    reqs = []
    for q in questions:
        fam = get_family(q.task)
        for st in styles:
            msgs = st.messages(fam, q)
            for s in range(samples):
                pid = path_id(q.id, teacher.name, st.name, s)
                reqs.append(
                    GenRequest(
                        key=pid, question=q, style=st.name, sample=s, messages=msgs, seed=request_seed(seed, pid)
                    )
                )
    return reqs


def _load_questions(run: RunDir, splits: list[str]) -> list[Question]:
    if not run.questions.exists():
        raise CotdistillError(
            f"{run.questions}: not found; write questions first (cotdistill questions --out {run.root}, "
            "or cotdistill import)"
        )
    qs = [q for q in read_questions(run.questions) if q.split in splits]
    if not qs:
        raise CotdistillError(f"{run.questions}: no questions in split(s) {', '.join(splits)} (generate.splits)")
    return qs


def pending_paths(run: RunDir, cfg: RunConfig) -> int:
    """How many configured paths are not yet in ``paths.jsonl`` (0: the stage is complete, ``run`` may skip it)."""
    styles = select_styles(cfg.generate.styles, cfg.generate.style_dirs)
    questions = _load_questions(run, cfg.generate.splits)
    done = existing_path_ids(run.paths)
    return sum(
        path_id(q.id, t.name, st.name, s) not in done
        for t in cfg.teachers
        for q in questions
        for st in styles
        for s in range(cfg.generate.samples)
    )


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"),
        TextColumn("[red]fail {task.fields[failed]}"),
        TextColumn("retry {task.fields[retries]}"),
        TextColumn("tok {task.fields[tokens]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
    )


def run_generate(
    run: RunDir,
    cfg: RunConfig,
    console: Console | None = None,
    backends: dict[str, TeacherBackend] | None = None,
) -> GenerateSummary:
    """Write every missing path of every teacher; returns the summary (also on Ctrl-C, then re-raised).

    ``backends`` injects ready backends by teacher name (tests); others are built from the config.
    """
    from cotdistill.teachers import build_backend

    gc = cfg.generate
    if not cfg.teachers:
        raise ConfigError("no teachers configured: add a 'teachers:' list to the config (see README, generate)")
    styles = select_styles(gc.styles, gc.style_dirs)
    questions = _load_questions(run, gc.splits)
    cache_path = run.cache / CACHE_FILE
    failures_path = run.logs / FAILURES_FILE
    repair_torn_tail(run.paths)
    repair_torn_tail(cache_path)
    done = existing_path_ids(run.paths)
    summary = GenerateSummary()

    plans: list[tuple[TeacherConfig, list[GenRequest]]] = []
    for t in cfg.teachers:
        reqs = build_requests(t, questions, styles, gc.samples, cfg.seed)
        ts = summary.teachers[t.name] = TeacherSummary(planned=len(reqs))
        todo = [r for r in reqs if r.key not in done]
        ts.existing = len(reqs) - len(todo)
        plans.append((t, todo))

    use_cache = {t.name: t.backend != "synthetic" for t, _ in plans}
    keys = {r.key: cache_key(t, r) for t, todo in plans if use_cache[t.name] for r in todo}
    wanted = set(keys.values())
    cached: dict[str, dict[str, Any]] = {}
    for o in _iter_json_lines(cache_path):
        if o.get("key") in wanted and isinstance(o.get("text"), str):
            cached[o["key"]] = o

    # build every backend that will be needed before any work starts: a missing key or model fails fast
    needed = [t for t, todo in plans if any(keys.get(r.key) not in cached for r in todo)]
    ready: dict[str, TeacherBackend] = {
        t.name: (backends or {}).get(t.name) or build_backend(t, cfg.seed) for t in needed
    }
    built = list(ready.values())

    # every line is flushed (a killed process loses nothing); fsync (power loss) is rare, so it never stalls I/O
    paths_out = JsonlAppender(run.paths, fsync_every=4096)
    cache_out = JsonlAppender(cache_path, fsync_every=4096)
    fail_out: JsonlAppender | None = None
    written: set[str] = set()
    progress = _progress(console)
    try:
        with progress:
            for t, todo in plans:
                ts = summary.teachers[t.name]
                task = progress.add_task(t.name, total=len(todo), rate=0.0, failed=0, retries=0, tokens=0)
                start = time.perf_counter()

                def write_path(req: GenRequest, text: str, usage: dict[str, int], meta: dict[str, Any], t=t) -> None:
                    if req.key in written:  # a backend that reports a request twice never duplicates a path
                        return
                    written.add(req.key)
                    fam = get_family(req.question.task)
                    p = Path(
                        id=req.key,
                        question_id=req.question.id,
                        teacher=t.name,
                        style=req.style,
                        sample=req.sample,
                        prompt=req.prompt,
                        text=text,
                        answer=fam.extract(text, req.question),
                        metadata={"usage": usage, "backend": t.backend, "model": t.model, **meta},
                    )
                    paths_out.write(p)
                    maybe_kill(f"generate:path:{len(written)}")

                def tick(ts=ts, task=task, start=start) -> None:
                    elapsed = max(time.perf_counter() - start, 1e-9)
                    progress.update(
                        task,
                        advance=1,
                        rate=(ts.cached + ts.completed + ts.failed) / elapsed,
                        failed=ts.failed,
                        retries=ts.retries,
                        tokens=ts.prompt_tokens + ts.completion_tokens,
                    )

                to_send = []
                for r in todo:
                    hit = cached.get(keys.get(r.key, ""))
                    if hit is None:
                        to_send.append(r)
                        continue
                    write_path(r, hit["text"], hit.get("usage", {}), {**hit.get("metadata", {}), "cached": True})
                    ts.cached += 1
                    tick()

                def on_result(req: GenRequest, comp: Completion, t=t, ts=ts, tick=tick, write_path=write_path) -> None:
                    nonlocal fail_out
                    ts.retries += comp.retries
                    ts.prompt_tokens += int(comp.usage.get("prompt_tokens", 0))
                    ts.completion_tokens += int(comp.usage.get("completion_tokens", 0))
                    if comp.text is None:
                        ts.failed += 1
                        fail_out = fail_out or JsonlAppender(failures_path)
                        fail_out.write(
                            {
                                "schema_version": SCHEMA_VERSION,
                                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "path_id": req.key,
                                "question_id": req.question.id,
                                "teacher": t.name,
                                "style": req.style,
                                "sample": req.sample,
                                "retries": comp.retries,
                                "error": comp.error or "unknown error",
                            }
                        )
                    else:
                        if use_cache[t.name]:
                            cache_out.write(
                                {
                                    "schema_version": SCHEMA_VERSION,
                                    "key": keys[req.key],
                                    "path_id": req.key,
                                    "text": comp.text,
                                    "usage": comp.usage,
                                    "metadata": comp.metadata,
                                }
                            )
                            maybe_kill(f"generate:cache_only:{len(written)}")
                        write_path(req, comp.text, comp.usage, comp.metadata)
                        ts.completed += 1
                    tick()

                if to_send:
                    try:
                        ready[t.name].generate(to_send, on_result)
                    finally:
                        ts.seconds = time.perf_counter() - start
                else:
                    ts.seconds = time.perf_counter() - start
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        for b in built:
            try:
                b.close()
            except Exception:  # noqa: BLE001  (closing must not hide the real outcome)
                pass
        paths_out.close()
        cache_out.close()
        if fail_out is not None:
            fail_out.close()
        if console is not None:
            print_summary(summary, console, failures_path)
    return summary


def print_summary(summary: GenerateSummary, console: Console, failures_path: FsPath | None = None) -> None:
    """A table per teacher: planned, already in paths.jsonl (had), from cache, new, failed, retries, tokens, rate."""
    table = Table(title="generate" + (" (interrupted: re-run to resume)" if summary.interrupted else ""))
    for col in ("teacher", "planned", "had", "cached", "new", "failed", "retries", "tok in/out", "/s"):
        table.add_column(col, justify="left" if col == "teacher" else "right")
    for name, t in summary.teachers.items():
        rate = (t.completed + t.failed) / t.seconds if t.seconds > 0 else 0.0
        table.add_row(
            name,
            str(t.planned),
            str(t.existing),
            str(t.cached),
            str(t.completed),
            str(t.failed),
            str(t.retries),
            f"{t.prompt_tokens}/{t.completion_tokens}",
            f"{rate:.1f}",
        )
    console.print(table)
    if summary.failed:
        where = f" (see {failures_path})" if failures_path else ""
        console.print(f"[yellow]{summary.failed} request(s) failed after retries{where}; re-run to retry them[/]")
