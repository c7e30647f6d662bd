"""The ``filter`` stage: answer check, judge and graph consensus for every path of ``RUN/paths.jsonl``.

Writes ``RUN/filtered.jsonl`` (every path, ``checks`` filled: ``answer``, ``answer_ok``, ``judge``, ``judge_reason``,
``consensus``, ``kept``, ``reject_reason``) and ``RUN/filter_stats.json``. Streams: paths are indexed by byte offset
per question (:mod:`cotdistill.quality.path_index`; paths.jsonl need not be grouped), then read back one batch of
whole questions at a time, so memory stays flat however many paths there are. Judge verdicts and embeddings are
cached under ``RUN/cache/``, so a killed or repeated run redoes only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from cotdistill.config import FilterConfig, RunConfig
from cotdistill.errors import InputError
from cotdistill.faults import maybe_kill
from cotdistill.io import atomic_write_jsonl, atomic_write_text, file_digest
from cotdistill.progress import stage_progress
from cotdistill.quality.judges import Judge, Verdict, build_judge
from cotdistill.quality.path_index import PathIndex, index_paths
from cotdistill.records import SCHEMA_VERSION, Question, ReasoningPath, index_questions, is_kept, read_at, read_paths
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family

REASONS = ("unknown_question", "no_answer", "wrong_answer", "judge_invalid", "judge_unparseable", "low_consensus")
MAX_LISTED_EMPTY = 1000
Group = tuple[str, list[ReasoningPath]]


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

    def add(self, p: ReasoningPath, kept: bool, reason: str | None) -> None:
        self.total += 1
        self.kept += int(kept)
        for table, key in ((self.by_teacher, p.teacher), (self.by_style, p.style)):
            row = table.setdefault(key, {"total": 0, "kept": 0})
            row["total"] += 1
            row["kept"] += int(kept)
        if reason is not None:
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def empty(self, qid: str) -> None:
        self.n_empty += 1
        if len(self.empty_questions) < MAX_LISTED_EMPTY:
            self.empty_questions.append(qid)

    def as_dict(self, fc: FilterConfig, duplicates: int) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "total": self.total, "kept": self.kept,
            "by_teacher": dict(sorted(self.by_teacher.items())), "by_style": dict(sorted(self.by_style.items())),
            "by_reason": dict(sorted(self.by_reason.items())), "judge_verdicts": dict(sorted(self.judged.items())),
            "questions": self.questions, "questions_without_kept": self.n_empty,
            "questions_without_kept_ids": self.empty_questions, "duplicate_paths_skipped": duplicates,
            "settings": {
                "enabled": fc.enabled, "answer_check": fc.answer_check, "lenient_extraction": fc.lenient_extraction,
                "judge": fc.judge.kind, "consensus": fc.consensus.enabled, "use_gold": fc.consensus.use_gold,
                "min_consensus": fc.consensus.min_score,
            },
        }  # fmt: skip


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


def filter_run(run: RunDir, cfg: RunConfig, judge: Judge | None = None, encoder: Any = None) -> dict[str, Any]:
    """Filter every path of ``run``; writes filtered.jsonl and filter_stats.json; returns the statistics.

    ``judge`` / ``encoder`` override the configured ones (tests pass in-process fakes).
    """
    fc = cfg.filter
    idx = index_paths(run.paths)  # first: its peak and the question index's are not held at once
    question_at = index_questions(run.questions)
    # each indexed question's offset in questions.jsonl (-1: unknown), read back with its batch of paths
    q_offsets = np.array([question_at.get(q, -1) for q in idx.qids], dtype=np.int64)
    del question_at
    unknown = int(sum(idx.bounds[i + 1] - idx.bounds[i] for i in np.flatnonzero(q_offsets < 0)))
    if unknown == idx.total:
        raise InputError(
            run.paths, f"no path belongs to a question of {run.questions} (the first names question_id "
            f"'{idx.qids[0]}'): were the paths made for another run? re-import or re-generate them",
        )  # fmt: skip
    paths_digest = file_digest(run.paths)  # train compares it: a filtered.jsonl older than its paths is stale
    close_judge = None
    if judge is None:
        judge, close_judge = build_judge(cfg, run)
    enc = encoder
    if enc is None and fc.consensus.enabled:
        from cotdistill.embeddings import Encoder

        enc = Encoder(fc.consensus.encoder, device=fc.consensus.device, cache_dir=run.embeddings_cache)
    stats = _Stats()
    stats.questions = len(idx.qids)

    def records() -> Iterator[ReasoningPath]:
        with open(run.paths, "rb") as f, open(run.questions, "rb") as qf, stage_progress("filter", idx.total) as bar:
            for b, nums in enumerate(_batches(idx, fc.batch_paths)):
                maybe_kill(f"filter:batch:{b}")
                groups = [(idx.qids[i], [read_at(f, int(o), ReasoningPath) for o in idx.paths_of(i)]) for i in nums]
                questions = {idx.qids[i]: read_at(qf, int(q_offsets[i]), Question) for i in nums if q_offsets[i] >= 0}
                yield from filter_batch(groups, questions, fc, judge, enc, stats)
                bar.advance(sum(len(g[1]) for g in groups))

    try:
        atomic_write_jsonl(run.filtered, records())
    finally:
        if close_judge is not None:
            close_judge()
        if enc is not None and encoder is None:
            enc.close()
    out = {**stats.as_dict(fc, idx.duplicates), "unknown_question_paths": unknown, "paths_file": paths_digest}
    maybe_kill("filter:before_stats")
    atomic_write_text(run.filter_stats, json.dumps(out, indent=2) + "\n")
    return out


def _answer_checks(groups: list[Group], questions: dict[str, Question], fc: FilterConfig) -> dict[str, dict]:
    """(1) Each path's answer re-extracted through its task family and compared with gold."""
    checks: dict[str, dict[str, Any]] = {}
    for qid, paths in groups:
        q = questions.get(qid)
        for p in paths:
            if q is None:
                checks[p.id] = {"answer": p.answer, "answer_ok": False}
                continue
            fam = get_family(q.task)
            ans = fam.extract(p.text, q, lenient=fc.lenient_extraction)
            checks[p.id] = {"answer": ans, "answer_ok": fam.equivalent(ans, q.gold)}
    return checks


def _verdicts(
    groups: list[Group], questions: dict[str, Question], checks: dict[str, dict], fc: FilterConfig, judge: Judge | None
) -> dict[str, Verdict]:
    """(2) The judge, batched over whole questions (the llm judge skips paths already rejected unless asked)."""
    if judge is None:
        return {}
    skip_rejected = getattr(judge, "name", "") == "llm" and fc.answer_check and not fc.judge.judge_rejected
    items = [
        (questions[qid], p)
        for qid, paths in groups
        if qid in questions
        for p in paths
        if not (skip_rejected and not checks[p.id]["answer_ok"])
    ]
    return {p.id: v for (_, p), v in zip(items, judge.judge(items), strict=True)}


def _consensus(
    groups: list[Group], questions: dict[str, Question], checks: dict[str, dict], fc: FilterConfig, enc: Any
) -> dict[str, float]:
    """(3) Graph consensus per question over the sentence embeddings of its paths."""
    if not fc.consensus.enabled or enc is None:
        return {}
    from cotdistill.quality.consensus import consensus_scores

    cc = fc.consensus
    known = [(qid, paths) for qid, paths in groups if qid in questions]
    texts = [p.text for _, paths in known for p in paths]
    emb = enc.encode(texts, batch_size=cc.batch_size) if texts else None
    out: dict[str, float] = {}
    row = 0
    for qid, paths in known:
        e = emb[row : row + len(paths)]
        row += len(paths)
        answers = [checks[p.id]["answer"] for p in paths]
        correct = [checks[p.id]["answer_ok"] for p in paths] if cc.use_gold else None
        scores, _ = consensus_scores(e, answers, get_family(questions[qid].task).equivalent, correct, delta=cc.delta,
                                     eta=cc.eta, centrality=cc.centrality, normalize=cc.normalize)  # fmt: skip
        out.update({p.id: round(c, 6) for p, c in zip(paths, scores, strict=True)})
    return out


def _reason(known: bool, ch: dict, v: Verdict | None, c: float | None, fc: FilterConfig) -> str | None:
    """The first failed stage, in stage order (None: kept)."""
    if not fc.enabled:
        return None
    if not known:
        return "unknown_question"
    if fc.answer_check and not ch["answer_ok"]:
        return "no_answer" if ch["answer"] is None else "wrong_answer"
    if v is not None and v.verdict == "invalid":
        return "judge_invalid"
    if v is not None and v.verdict == "unparseable" and fc.judge.unparseable == "reject":
        return "judge_unparseable"
    if c is not None and c < fc.consensus.min_score:
        return "low_consensus"
    return None


def filter_batch(
    groups: list[Group], questions: dict[str, Question], fc: FilterConfig, judge: Judge | None, enc: Any, stats: _Stats
) -> Iterator[ReasoningPath]:
    """Every path of a batch of whole questions with its checks and decision filled in, in input order."""
    checks = _answer_checks(groups, questions, fc)
    verdicts = _verdicts(groups, questions, checks, fc, judge)
    consensus = _consensus(groups, questions, checks, fc, enc)
    for qid, paths in groups:
        kept_here = 0
        for p in paths:
            v = verdicts.get(p.id)
            reason = _reason(qid in questions, checks[p.id], v, consensus.get(p.id), fc)
            kept_here += int(reason is None)
            if v is not None:
                stats.judged[v.verdict] = stats.judged.get(v.verdict, 0) + 1
            p.checks.update({**checks[p.id], "judge": v.verdict if v else None, "judge_reason": v.reason if v else None,
                             "consensus": consensus.get(p.id), "kept": reason is None,
                             "reject_reason": reason})  # fmt: skip
            stats.add(p, reason is None, reason)
            yield p
        if kept_here == 0:
            stats.empty(qid)


def read_kept(run: RunDir) -> Iterator[ReasoningPath]:
    """The kept set: paths of ``RUN/filtered.jsonl`` with ``checks.kept`` true, streamed."""
    for p in read_paths(run.filtered, allow_empty=True):
        if is_kept(p):
            yield p


__all__ = ["REASONS", "filter_run", "index_paths", "read_kept"]
