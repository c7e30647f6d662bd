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
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from cotdistill.config import RunConfig, TeacherConfig
from cotdistill.errors import ConfigError, CotdistillError, StageFailed
from cotdistill.faults import maybe_kill
from cotdistill.io import JsonlAppender, atomic_write_jsonl, iter_objects, repair_torn_tail
from cotdistill.progress import Bar, stage_progress
from cotdistill.records import SCHEMA_VERSION, Question, ReasoningPath, path_id, read_questions
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family
from cotdistill.teachers.base import Completion, GenRequest, TeacherBackend
from cotdistill.teachers.styles import Style, select_styles

# settings that change what a backend writes (operational knobs such as concurrency or timeouts do not)
_OUTPUT_SETTINGS = ("backend", "model", "base_url", "temperature", "top_p", "max_tokens", "send_seed",
                    "n_per_request", "profile")  # fmt: skip


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
    kinds: dict[str, int] = field(default_factory=dict)  # failures by kind (Completion.kind)
    first_error: str = ""


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


@dataclass
class _Plan:
    """One teacher's missing requests, their cache keys and the cached completions among them."""

    teacher: TeacherConfig
    todo: list[GenRequest]
    keys: dict[str, str]
    cached: dict[str, dict[str, Any]]

    def hit(self, req: GenRequest) -> dict[str, Any] | None:
        return self.cached.get(self.keys.get(req.key, ""))


def _plans(run: RunDir, cfg: RunConfig, summary: GenerateSummary) -> list[_Plan]:
    """Per teacher: the requests not yet in ``paths.jsonl``, keyed for the cache (not synthetic teachers)."""
    gc = cfg.generate
    styles = select_styles(gc.styles, gc.style_dirs)
    questions = _load_questions(run, gc.splits)
    done = {str(o["id"]) for o in iter_objects(run.paths) if "id" in o}
    plans = []
    for t in cfg.teachers:
        reqs = build_requests(t, questions, styles, gc.samples, cfg.seed)
        todo = [r for r in reqs if r.key not in done]
        summary.teachers[t.name] = TeacherSummary(planned=len(reqs), existing=len(reqs) - len(todo))
        keys = {r.key: cache_key(t, r) for r in todo} if t.backend != "synthetic" else {}
        plans.append(_Plan(t, todo, keys, {}))
    wanted = {k for p in plans for k in p.keys.values()}
    by_key = {
        o["key"]: o
        for o in iter_objects(run.generate_cache)
        if o.get("key") in wanted and isinstance(o.get("text"), str)
    }
    for p in plans:
        p.cached = {k: by_key[k] for k in p.keys.values() if k in by_key}
    return plans


class _Writer:
    """Appends paths, cache entries and failures as results arrive (every line flushed: a kill loses nothing)."""

    def __init__(self, run: RunDir):
        self.run = run
        # opened on first use: a stage whose every request fails leaves no empty paths.jsonl behind
        self._paths: JsonlAppender | None = None
        self._cache: JsonlAppender | None = None
        self.failures: JsonlAppender | None = None
        self.written: set[str] = set()

    @property
    def paths(self) -> JsonlAppender:
        self._paths = self._paths or JsonlAppender(self.run.paths, fsync_every=4096)
        return self._paths

    @property
    def cache(self) -> JsonlAppender:
        self._cache = self._cache or JsonlAppender(self.run.generate_cache, fsync_every=4096)
        return self._cache

    def path(self, t: TeacherConfig, req: GenRequest, text: str, usage: dict[str, int], meta: dict[str, Any]) -> None:
        if req.key in self.written:  # a backend that reports a request twice never duplicates a path
            return
        self.written.add(req.key)
        fam = get_family(req.question.task)
        self.paths.write(
            ReasoningPath(
                id=req.key, question_id=req.question.id, teacher=t.name, style=req.style, sample=req.sample,
                prompt=req.prompt, text=text, answer=fam.extract(text, req.question),
                metadata={"usage": usage, "backend": t.backend, "model": t.model, **meta},
            )
        )  # fmt: skip
        maybe_kill(f"generate:path:{len(self.written)}")

    def cached(self, key: str, req: GenRequest, comp: Completion) -> None:
        self.cache.write({"schema_version": SCHEMA_VERSION, "key": key, "path_id": req.key, "text": comp.text,
                          "usage": comp.usage, "metadata": comp.metadata})  # fmt: skip
        maybe_kill(f"generate:cache_only:{len(self.written)}")

    def failure(self, t: TeacherConfig, req: GenRequest, comp: Completion) -> None:
        self.failures = self.failures or JsonlAppender(self.run.generate_failures)
        self.failures.write({
            "schema_version": SCHEMA_VERSION, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "path_id": req.key,
            "question_id": req.question.id, "teacher": t.name, "style": req.style, "sample": req.sample,
            "retries": comp.retries, "error": comp.error or "unknown error",
        })  # fmt: skip

    def close(self) -> None:
        for ap in (self._paths, self._cache, self.failures):
            if ap is not None:
                ap.close()


def _run_teacher(plan: _Plan, backend: TeacherBackend | None, ts: TeacherSummary, w: _Writer, bar: Bar) -> None:
    """Write one teacher's cached paths, then send the rest to its backend, writing each result as it arrives."""
    t, start = plan.teacher, time.perf_counter()

    def tick() -> None:
        rate = (ts.cached + ts.completed + ts.failed) / max(time.perf_counter() - start, 1e-9)
        bar.advance(1, f"{rate:.1f}/s fail {ts.failed} retry {ts.retries} "
                       f"tok {ts.prompt_tokens + ts.completion_tokens}")  # fmt: skip

    def on_result(req: GenRequest, comp: Completion) -> None:
        ts.retries += comp.retries
        ts.prompt_tokens += int(comp.usage.get("prompt_tokens", 0))
        ts.completion_tokens += int(comp.usage.get("completion_tokens", 0))
        if comp.text is None:
            ts.failed += 1
            ts.kinds[comp.kind or "other"] = ts.kinds.get(comp.kind or "other", 0) + 1
            ts.first_error = ts.first_error or (comp.error or "unknown error")
            w.failure(t, req, comp)
        else:
            if req.key in plan.keys:
                w.cached(plan.keys[req.key], req, comp)
            w.path(t, req, comp.text, comp.usage, comp.metadata)
            ts.completed += 1
        tick()

    to_send = []
    for r in plan.todo:
        hit = plan.hit(r)
        if hit is None:
            to_send.append(r)
            continue
        w.path(t, r, hit["text"], hit.get("usage", {}), {**hit.get("metadata", {}), "cached": True})
        ts.cached += 1
        tick()
    try:
        if to_send and backend is not None:
            backend.generate(to_send, on_result)
    finally:
        ts.seconds = time.perf_counter() - start


def drop_generated_paths(run: RunDir) -> None:
    """Remove the paths a teacher backend wrote (``metadata.backend`` set) from ``paths.jsonl``, keeping imported
    ones: what a changed generation config makes stale (the request cache writes them again for free)."""
    if not run.paths.exists():
        return
    repair_torn_tail(run.paths)
    kept = [o for o in iter_objects(run.paths) if not (o.get("metadata") or {}).get("backend")]
    if kept:
        atomic_write_jsonl(run.paths, kept)
    else:
        run.paths.unlink()


def run_generate(
    run: RunDir,
    cfg: RunConfig,
    console: Console | None = None,
    backends: dict[str, TeacherBackend] | None = None,
) -> GenerateSummary:
    """Write every missing path of every teacher; returns the summary (also on Ctrl-C, then re-raised).

    ``console`` shows progress and the summary table there (None: silent). ``backends`` injects ready backends by
    teacher name (tests); others are built from the config.
    """
    from cotdistill.teachers import build_backend

    if not cfg.teachers:
        if cfg.questions.source == "imported" and run.paths.exists():
            return GenerateSummary()  # the imported paths are the run's paths
        raise ConfigError("no teachers configured: add a 'teachers:' list to the config (see README, generate)")
    repair_torn_tail(run.paths)
    repair_torn_tail(run.generate_cache)
    summary = GenerateSummary()
    plans = _plans(run, cfg, summary)
    # build every backend that will be needed before any work starts: a missing key or model fails fast
    needed = [p.teacher for p in plans if any(p.hit(r) is None for r in p.todo)]
    ready = {t.name: (backends or {}).get(t.name) or build_backend(t, cfg.seed) for t in needed}
    writer = _Writer(run)
    finished = False
    try:
        for p in plans:
            with stage_progress(p.teacher.name, len(p.todo), enabled=console is not None, on=console) as bar:
                _run_teacher(p, ready.get(p.teacher.name), summary.teachers[p.teacher.name], writer, bar)
        finished = True
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        for b in ready.values():
            try:
                b.close()
            except Exception:  # noqa: BLE001  (closing must not hide the real outcome)
                pass
        writer.close()
        failed = failure(summary, run.generate_failures)
        # the table says what each teacher did; a stage that did nothing (or hit a bug) is said in one line
        if console is not None and (summary.interrupted or (finished and (failed is None or failed.partial))):
            print_summary(summary, console, run.generate_failures)
    if failed is not None:
        raise failed
    return summary


TEACHER_FAULTS = ("auth", "not_found")  # failures no retry can fix: the teacher is set up wrong


def failure(summary: GenerateSummary, log: Any) -> StageFailed | None:
    """The error a stage with failed requests ends with (exit 3), or None when a re-run can retry them.

    Every request of this run failed (nothing written): the first cause, e.g. "connection refused by URL". A teacher
    whose key or model was refused: named, even when other teachers worked (``partial``: the table is printed too).
    """
    if summary.failed == 0:
        return None
    done = sum(t.completed + t.cached for t in summary.teachers.values())
    bad = {n: t for n, t in summary.teachers.items() if t.failed}
    if done == 0:
        name, t = next(iter(bad.items()))
        err = StageFailed(
            f"generate: every request failed, all {summary.failed} (teacher '{name}': {t.first_error[:300]}); "
            f"nothing new was written, see {log}"
        )
        err.partial = False
        return err
    wrong = {n: t for n, t in bad.items() if any(k in t.kinds for k in TEACHER_FAULTS)}
    if wrong:
        name, t = next(iter(wrong.items()))
        err = StageFailed(
            f"generate: teacher '{name}' cannot work as configured ({t.first_error[:300]}); {summary.failed} "
            f"request(s) failed, the other paths were written (see {log})"
        )
        err.partial = True
        return err
    return None


def print_summary(summary: GenerateSummary, console: Console, failures_path: Any = None) -> None:
    """A table per teacher: planned, already in paths.jsonl (had), from cache, new, failed, retries, tokens, rate."""
    table = Table(title="generate" + (" (interrupted: re-run to resume)" if summary.interrupted else ""))
    for col in ("teacher", "planned", "had", "cached", "new", "failed", "retries", "tok in/out", "/s"):
        table.add_column(col, justify="left" if col == "teacher" else "right")
    for name, t in summary.teachers.items():
        rate = (t.completed + t.failed) / t.seconds if t.seconds > 0 else 0.0
        table.add_row(name, str(t.planned), str(t.existing), str(t.cached), str(t.completed), str(t.failed),
                      str(t.retries), f"{t.prompt_tokens}/{t.completion_tokens}", f"{rate:.1f}")  # fmt: skip
    console.print(table)
    if summary.failed:
        where = f" (see {failures_path})" if failures_path else ""
        console.print(f"[yellow]{summary.failed} request(s) failed after retries{where}; re-run to retry them[/]")
