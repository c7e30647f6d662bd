"""The ``filter`` stage: answer check, judge and graph consensus for every path of ``RUN/paths.jsonl``.

Writes ``RUN/filtered.jsonl`` (every path, ``checks`` filled: ``answer``, ``answer_ok``, ``judge``, ``judge_reason``,
``consensus``, ``kept``, ``reject_reason``) and ``RUN/filter_stats.json``. Streams: paths are indexed by byte offset
per question (paths.jsonl need not be grouped), then read back one batch of whole questions at a time, so memory
stays flat however many paths there are. Judge verdicts and embeddings are cached under ``RUN/cache/``, so a
killed or repeated run redoes only what is missing.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import numpy as np

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError, InputError
from cotdistill.io import atomic_write_jsonl, atomic_write_text
from cotdistill.quality.judges import ArithmeticJudge, Judge, Verdict
from cotdistill.records import SCHEMA_VERSION, Path, Question, index_questions, iter_jsonl, read_at
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family

REASONS = ("unknown_question", "no_answer", "wrong_answer", "judge_invalid", "judge_unparseable", "low_consensus")
MAX_LISTED_EMPTY = 1000


def stats_path(run: RunDir) -> FsPath:
    """``RUN/filter_stats.json``."""
    return run.root / "filter_stats.json"


@dataclass
class PathIndex:
    """Byte offsets of every path in paths.jsonl, grouped by question (questions in order of first appearance):
    question ``i``'s paths are ``offsets[bounds[i]:bounds[i + 1]]``. Flat arrays: about 8 bytes per path."""

    qids: list[str]
    offsets: np.ndarray
    bounds: np.ndarray
    duplicates: int = 0

    @property
    def total(self) -> int:
        return len(self.offsets)

    def paths_of(self, i: int) -> np.ndarray:
        """The offsets of question ``i``'s paths."""
        return self.offsets[self.bounds[i] : self.bounds[i + 1]]


def index_paths(file: FsPath) -> PathIndex:
    """One validating pass over paths.jsonl: byte offsets per question (duplicate path ids: the first one wins).

    Kept per path: an offset, a question number and an id hash (20 bytes while indexing, 8 after); a set of every
    id string and an array per question took about 140 and 280 bytes. Ids whose hashes repeat are compared for
    real in a second pass, run only when any do.
    """
    if not file.exists():
        raise InputError(file, "file not found (run `cotdistill generate` or `cotdistill import` first)")
    qnum: dict[str, int] = {}
    qn, offs, hashes = array("i"), array("q"), array("q")
    for start, p in iter_jsonl(file, Path, allow_empty=True):
        qn.append(qnum.setdefault(p.question_id, len(qnum)))
        offs.append(start)
        hashes.append(hash(p.id))
    if not offs:
        raise InputError(file, "file is empty: no paths to filter")
    q = np.frombuffer(qn, dtype=np.int32)
    o = np.frombuffer(offs, dtype=np.int64)
    keep = _first_occurrences(file, o, hashes)
    del hashes  # before the grouping below allocates its own arrays
    duplicates = 0 if keep is None else int((~keep).sum())
    if keep is not None:
        q, o = q[keep], o[keep]
    counts = np.bincount(q, minlength=len(qnum))
    present = counts > 0  # a question whose only paths repeated other questions' ids has none left
    bounds = np.concatenate([[0], np.cumsum(counts[present])])
    qids = [qid for qid, k in qnum.items() if present[k]]
    del qnum
    return PathIndex(qids=qids, offsets=_group_by_question(q, o), bounds=bounds, duplicates=duplicates)


_OFFSET_BITS = 40  # paths.jsonl up to 1 TiB; question numbers up to 2**23 share the key's 63 bits


def _group_by_question(q: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Offsets sorted by question number, file order within a question.

    Offsets rise in file order, so sorting one int64 key (question << 40 | offset) in place gives that order
    without an argsort permutation and a gathered copy (8 + 8 bytes per path more at the peak).
    """
    if len(o) and (int(o[-1]) >= 1 << _OFFSET_BITS or int(q.max()) >= 1 << (63 - _OFFSET_BITS)):
        return o[np.argsort(q, kind="stable")]
    key = q.astype(np.int64)
    key <<= _OFFSET_BITS
    key |= o
    key.sort()
    key &= (1 << _OFFSET_BITS) - 1
    return key


def _first_occurrences(file: FsPath, offsets: np.ndarray, hashes: array) -> np.ndarray | None:
    """Mask over paths in file order, False for a later occurrence of an id; None when every id is unique."""
    h = np.frombuffer(hashes, dtype=np.int64)
    h.sort()  # in place: the hashes are not needed in file order
    repeated = set(h[1:][h[1:] == h[:-1]].tolist())
    if not repeated:
        return None
    keep = np.ones(len(offsets), dtype=bool)
    seen: set[str] = set()
    for start, p in iter_jsonl(file, Path, allow_empty=True):
        if hash(p.id) not in repeated:
            continue
        if p.id in seen:
            keep[int(np.searchsorted(offsets, start))] = False  # offsets are in file order, so sorted
        seen.add(p.id)
    return keep


class _Stats:
    def __init__(self) -> None:
        self.total = self.kept = 0
        self.by_teacher: dict[str, dict[str, int]] = {}
        self.by_style: dict[str, dict[str, int]] = {}
        self.by_reason: dict[str, int] = {}
        self.judged: dict[str, int] = {}
        self.empty_questions: list[str] = []
        self.n_empty = 0
        self.questions = 0

    def add(self, p: Path, kept: bool, reason: str | None) -> None:
        self.total += 1
        self.kept += int(kept)
        for table, key in ((self.by_teacher, p.teacher), (self.by_style, p.style)):
            row = table.setdefault(key, {"total": 0, "kept": 0})
            row["total"] += 1
            row["kept"] += int(kept)
        if reason is not None:
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def as_dict(self, cfg: RunConfig, duplicates: int) -> dict[str, Any]:
        fc = cfg.filter
        return {
            "schema_version": SCHEMA_VERSION,
            "total": self.total,
            "kept": self.kept,
            "by_teacher": dict(sorted(self.by_teacher.items())),
            "by_style": dict(sorted(self.by_style.items())),
            "by_reason": dict(sorted(self.by_reason.items())),
            "judge_verdicts": dict(sorted(self.judged.items())),
            "questions": self.questions,
            "questions_without_kept": self.n_empty,
            "questions_without_kept_ids": self.empty_questions,
            "duplicate_paths_skipped": duplicates,
            "settings": {
                "enabled": fc.enabled,
                "answer_check": fc.answer_check,
                "lenient_extraction": fc.lenient_extraction,
                "judge": fc.judge.kind,
                "consensus": fc.consensus.enabled,
                "use_gold": fc.consensus.use_gold,
                "min_consensus": fc.consensus.min_score,
            },
        }


def build_judge(cfg: RunConfig, run: RunDir) -> tuple[Judge | None, Any]:
    """The configured judge (and its cache/backend to close afterwards); None for ``kind: none``."""
    j = cfg.filter.judge
    if j.kind == "none":
        return None, None
    if j.kind == "arithmetic":
        return ArithmeticJudge(), None
    if j.kind == "synthetic":
        from cotdistill.quality.judges import SyntheticJudge

        return SyntheticJudge(), None
    # llm: a configured teacher's backend, at temperature 0
    from cotdistill.quality.judges import LLMJudge, VerdictCache, judge_identity

    teacher = next((t for t in cfg.teachers if t.name == j.teacher), None)
    if teacher is None:
        raise ConfigError(f"filter.judge.teacher '{j.teacher}' is not one of the configured teachers")
    try:
        from cotdistill.teachers import build_backend  # written by the generation stage
    except ImportError:
        raise ConfigError(
            "the llm judge needs the teacher backends (cotdistill.teachers.build_backend), missing from this install"
        ) from None
    tcfg = teacher.model_copy(update={"temperature": 0.0, "top_p": 1.0})
    backend = build_backend(tcfg, cfg.seed)
    cache = VerdictCache(run.cache / "judge_verdicts.jsonl")
    ident = judge_identity(tcfg.model, tcfg.backend, tcfg.base_url)
    return LLMJudge(backend, ident, cache, seed=cfg.seed), (cache, backend)


def _batches(idx: PathIndex, batch_paths: int) -> Iterator[list[int]]:
    """Question numbers of ``idx``, whole questions, at least ``batch_paths`` paths per batch (but the last)."""
    batch: list[int] = []
    n = 0
    for i in range(len(idx.qids)):
        batch.append(i)
        n += int(idx.bounds[i + 1] - idx.bounds[i])
        if n >= batch_paths:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def filter_run(
    run: RunDir, cfg: RunConfig, judge: Judge | None = None, encoder: Any = None, progress: bool = True
) -> dict[str, Any]:
    """Filter every path of ``run``; writes filtered.jsonl and filter_stats.json; returns the statistics.

    ``judge`` / ``encoder`` override the configured ones (tests pass in-process fakes).
    """
    fc = cfg.filter
    idx = index_paths(run.paths)  # first: its peak and the question index's are not held at once
    question_at = index_questions(run.questions)
    # each indexed question's offset in questions.jsonl (-1: unknown), read back with its batch of paths
    q_offsets = np.array([question_at.get(q, -1) for q in idx.qids], dtype=np.int64)
    del question_at
    closers: Any = None
    if judge is None:
        judge, closers = build_judge(cfg, run)
    enc = encoder
    if enc is None and fc.consensus.enabled:
        from cotdistill.embeddings import Encoder

        enc = Encoder(fc.consensus.encoder, device=fc.consensus.device, cache_dir=run.cache / "embeddings")
    stats = _Stats()
    stats.questions = len(idx.qids)
    llm_like = getattr(judge, "name", "") == "llm"

    from cotdistill.faults import maybe_kill

    def records() -> Iterator[Path]:
        with open(run.paths, "rb") as f, open(run.questions, "rb") as qf, _progress(progress, idx.total) as bar:
            for b, nums in enumerate(_batches(idx, fc.batch_paths)):
                maybe_kill(f"filter:batch:{b}")
                groups = [(idx.qids[i], [read_at(f, int(o), Path) for o in idx.paths_of(i)]) for i in nums]
                questions = {idx.qids[i]: read_at(qf, int(q_offsets[i]), Question) for i in nums if q_offsets[i] >= 0}
                yield from _filter_batch(groups, questions, cfg, judge, enc, llm_like, stats)
                if bar is not None:
                    bar[0].advance(bar[1], sum(len(g[1]) for g in groups))

    try:
        atomic_write_jsonl(run.filtered, records())
    finally:
        if closers is not None:
            cache, backend = closers
            cache.close()
            backend.close()
        if enc is not None and encoder is None:
            enc.close()
    out = stats.as_dict(cfg, idx.duplicates)
    maybe_kill("filter:before_stats")
    atomic_write_text(stats_path(run), json.dumps(out, indent=2) + "\n")
    return out


class _progress:
    """A rich progress bar over paths (a no-op context when disabled)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.p = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn("filter"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.p.start()
        return self.p, self.p.add_task("filter", total=self.total)

    def __exit__(self, *exc: object) -> None:
        if self.p is not None:
            self.p.stop()


def _filter_batch(
    groups: list[tuple[str, list[Path]]],
    questions: dict[str, Question],
    cfg: RunConfig,
    judge: Judge | None,
    enc: Any,
    llm_like: bool,
    stats: _Stats,
) -> Iterator[Path]:
    fc = cfg.filter
    # (1) answer check against gold
    checks: dict[str, dict[str, Any]] = {}
    for qid, paths in groups:
        q = questions.get(qid)
        fam = get_family(q.task) if q else None
        for p in paths:
            if q is None or fam is None:
                checks[p.id] = {"answer": p.answer, "answer_ok": False}
                continue
            ans = fam.extract(p.text, q, lenient=fc.lenient_extraction)
            checks[p.id] = {"answer": ans, "answer_ok": fam.equivalent(ans, q.gold)}
    # (2) the judge, batched over whole questions (the llm judge skips paths already rejected unless asked)
    verdicts: dict[str, Verdict] = {}
    if judge is not None:
        items = []
        for qid, paths in groups:
            q = questions.get(qid)
            if q is None:
                continue
            for p in paths:
                if llm_like and fc.answer_check and not fc.judge.judge_rejected and not checks[p.id]["answer_ok"]:
                    continue
                items.append((q, p))
        for (_, p), v in zip(items, judge.judge(items), strict=True):
            verdicts[p.id] = v
    # (3) consensus per question
    consensus: dict[str, float] = {}
    if fc.consensus.enabled and enc is not None:
        from cotdistill.quality.consensus import consensus_scores

        known = [(qid, paths) for qid, paths in groups if qid in questions]
        texts = [p.text for _, paths in known for p in paths]
        emb = enc.encode(texts, batch_size=fc.consensus.batch_size) if texts else None
        row = 0
        cc = fc.consensus
        for qid, paths in known:
            fam = get_family(questions[qid].task)
            e = emb[row : row + len(paths)]
            row += len(paths)
            answers = [checks[p.id]["answer"] for p in paths]
            correct = [checks[p.id]["answer_ok"] for p in paths] if cc.use_gold else None
            scores, _ = consensus_scores(
                e,
                answers,
                fam.equivalent,
                correct,
                delta=cc.delta,
                eta=cc.eta,
                centrality=cc.centrality,
                normalize=cc.normalize,
            )
            for p, c in zip(paths, scores, strict=True):
                consensus[p.id] = round(c, 6)
    # decisions, in stage order: the first failed stage is the reject reason
    for qid, paths in groups:
        kept_here = 0
        for p in paths:
            ch = checks[p.id]
            v = verdicts.get(p.id)
            reason: str | None = None
            if qid not in questions:
                reason = "unknown_question"
            elif fc.answer_check and not ch["answer_ok"]:
                reason = "no_answer" if ch["answer"] is None else "wrong_answer"
            elif v is not None and v.verdict == "invalid":
                reason = "judge_invalid"
            elif v is not None and v.verdict == "unparseable" and fc.judge.unparseable == "reject":
                reason = "judge_unparseable"
            elif p.id in consensus and consensus[p.id] < fc.consensus.min_score:
                reason = "low_consensus"
            if not fc.enabled:
                reason = None
            kept = reason is None
            kept_here += int(kept)
            if v is not None:
                stats.judged[v.verdict] = stats.judged.get(v.verdict, 0) + 1
            p.checks.update(
                {
                    **ch,
                    "judge": v.verdict if v else None,
                    "judge_reason": v.reason if v else None,
                    "consensus": consensus.get(p.id),
                    "kept": kept,
                    "reject_reason": reason,
                }
            )
            stats.add(p, kept, reason)
            yield p
        if kept_here == 0:
            stats.n_empty += 1
            if len(stats.empty_questions) < MAX_LISTED_EMPTY:
                stats.empty_questions.append(qid)


def read_kept(run: RunDir) -> Iterator[Path]:
    """The kept set: paths of ``RUN/filtered.jsonl`` with ``checks.kept`` true, streamed."""
    from cotdistill.records import read_paths

    for p in read_paths(run.filtered, allow_empty=True):
        if p.checks.get("kept"):
            yield p


__all__ = ["REASONS", "filter_run", "index_paths", "read_kept", "stats_path"]
