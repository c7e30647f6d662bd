"""What training reads and how it is ordered: the run's questions and paths, each example tokenised once per
student (over-long examples dropped and counted), and one epoch's batches as a pure function of (seed, epoch).

Batching modes: ``path`` (shuffled, optionally length-grouped) and ``question`` (a question's examples always in
the same step, for methods that weigh a question's paths against each other). Under several processes a global
batch is sharded, whole questions per process in ``question`` mode.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from cotdistill.errors import CotdistillError
from cotdistill.records import Question, ReasoningPath, is_kept, load_questions, read_paths
from cotdistill.rundir import RunDir
from cotdistill.students.encoding import Encoded, encode
from cotdistill.students.prompt import question_prompt
from cotdistill.training.methods.base import Example, StudentHandle


@dataclass
class TrainData:
    """Questions by split and every train/dev path (with checks); ``fallback`` when no filter ran."""

    train_questions: dict[str, Question]
    dev_questions: dict[str, Question]
    train_paths: list[ReasoningPath]
    dev_paths: list[ReasoningPath]
    fallback: bool
    unknown_question_paths: int = 0  # paths naming no question of questions.jsonl (ignored, counted)
    duplicate_paths: int = 0  # later paths repeating an earlier path's id (ignored, counted; the first is kept)

    def kept_train(self) -> int:
        return sum(is_kept(p) for p in self.train_paths)


def load_train_data(run: RunDir, max_paths: int | None = None, max_paths_per_teacher: int | None = None) -> TrainData:
    """Read questions and paths: ``filtered.jsonl`` (kept = ``checks.kept``) or, when no filter ran, every path of
    ``paths.jsonl`` marked kept; with ``max_paths``, a question's kept train paths after the first ``max_paths``
    (in file order) are left out, and with ``max_paths_per_teacher`` those after the first ones of each (question,
    teacher), applied first, so that a teacher whose paths come first in the file does not take every place.

    A ``filtered.jsonl`` made from another ``paths.jsonl`` (re-imported or regenerated since) is an error saying
    so. Paths naming no question of ``questions.jsonl`` and repeated path ids are skipped and counted; when no
    path names a question at all, that is an error.
    """
    if not run.questions.exists():
        raise CotdistillError(f"{run.questions}: not found (write questions first: cotdistill questions / import)")
    qs = load_questions(run.questions)
    fallback = not run.filtered.exists()
    src = run.paths if fallback else run.filtered
    if not src.exists():
        raise CotdistillError(f"{src}: not found (generate or import paths first)")
    if not fallback:
        check_filtered_is_current(run)
    train_q = {k: q for k, q in qs.items() if q.split == "train"}
    dev_q = {k: q for k, q in qs.items() if q.split == "dev"}
    data = TrainData(train_q, dev_q, [], [], fallback)
    seen: set[str] = set()
    cap = PathCap(max_paths, max_paths_per_teacher)
    total = 0
    for p in read_paths(src):
        total += 1
        if p.id in seen:
            data.duplicate_paths += 1
            continue
        seen.add(p.id)
        if p.question_id not in qs:
            data.unknown_question_paths += 1
            continue
        if fallback:
            p.checks = {**p.checks, "kept": True}
        if p.question_id in train_q:
            if is_kept(p) and not cap.admit(p):
                continue
            data.train_paths.append(p)
        elif p.question_id in dev_q:
            data.dev_paths.append(p)
    if not train_q:
        raise CotdistillError(f"{run.questions}: no train-split questions")
    if total and data.unknown_question_paths == total - data.duplicate_paths:
        hint = "re-run cotdistill filter" if not fallback else "re-import or re-generate them"
        raise CotdistillError(f"{src}: none of its {total} paths belongs to a question of {run.questions} ({hint})")
    return data


class PathCap:
    """Counts train paths per question and per (question, teacher) and says whether one more fits: the loader caps
    kept paths with it, QR-Distill's ``filter: false`` caps paths of any quality (the same budget, unfiltered)."""

    def __init__(self, per_question: int | None, per_teacher: int | None) -> None:
        self.per_question, self.per_teacher = per_question, per_teacher
        self.by_q: dict[str, int] = {}
        self.by_qt: dict[tuple[str, str], int] = {}

    def admit(self, p: ReasoningPath) -> bool:
        qt = (p.question_id, p.teacher)
        if self.per_teacher is not None and self.by_qt.get(qt, 0) >= self.per_teacher:
            return False
        if self.per_question is not None and self.by_q.get(p.question_id, 0) >= self.per_question:
            return False
        self.by_qt[qt] = self.by_qt.get(qt, 0) + 1
        self.by_q[p.question_id] = self.by_q.get(p.question_id, 0) + 1
        return True


def check_filtered_is_current(run: RunDir) -> None:
    """``filtered.jsonl`` was made from the ``paths.jsonl`` that is there now (the digest ``filter`` recorded in
    ``filter_stats.json``); an error saying to re-run the filter otherwise. Runs filtered before the digest existed
    are not checked."""
    import json

    from cotdistill.io import file_digest

    try:
        recorded = json.loads(run.filter_stats.read_text(encoding="utf-8")).get("paths_file")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(recorded, dict) or not run.paths.exists():
        return
    now = file_digest(run.paths)
    if now != recorded:
        was, cur = recorded.get("bytes"), now["bytes"]
        what = f"{was} bytes when filtered, {cur} now" if was != cur else "same size, other content"
        raise CotdistillError(
            f"{run.filtered} is stale: {run.paths} changed after it was filtered ({what}); re-run cotdistill filter"
        )


def tokenizer_texts(data: TrainData, policy: str = "core") -> Iterator[str]:
    """Train split's prompts (under the run's prompt policy) and path texts: what preset tokenizers train on."""
    for q in data.train_questions.values():
        yield question_prompt(q, policy)
    for p in data.train_paths:
        yield p.text


def encode_examples(
    examples: list[Example], students: list[StudentHandle], max_length: int
) -> tuple[list[Example], dict[str, list[Encoded]], int]:
    """Tokenise each example for every student; drop (and count) those over ``max_length`` for any student."""
    enc: dict[str, list[Encoded]] = {s.name: [] for s in students}
    keep: list[Example] = []
    dropped = 0
    for ex in examples:
        per = {s.name: encode(s.tokenizer, ex.prompt, ex.target) for s in students}
        if any(len(e) > max_length for e in per.values()):
            dropped += 1
            continue
        keep.append(ex)
        for k, e in per.items():
            enc[k].append(e)
    return keep, enc, dropped


def make_batches(
    lengths: list[int], groups: list[str], batch_size: int, seed: int, epoch: int, mode: str, length_grouping: bool
) -> list[list[int]]:
    """One epoch's batches of example indices, a pure function of (seed, epoch) so resume replays the same order.

    ``path``: shuffle, then (length_grouping) sort windows of 50 batches by length, cut batches, shuffle batches.
    ``question``: shuffle questions; pack whole questions until a batch has ``batch_size`` examples.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    if mode == "question":
        by_q: dict[str, list[int]] = {}
        for i in idx:
            by_q.setdefault(groups[i], []).append(i)
        qids = list(by_q)
        rng.shuffle(qids)
        batches: list[list[int]] = []
        cur: list[int] = []
        for q in qids:
            if cur and len(cur) + len(by_q[q]) > batch_size:
                batches.append(cur)
                cur = []
            cur = cur + by_q[q]
        if cur:
            batches.append(cur)
        return batches
    rng.shuffle(idx)
    if length_grouping:
        window = batch_size * 50
        idx = [i for w in range(0, len(idx), window) for i in sorted(idx[w : w + window], key=lambda j: -lengths[j])]
    batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    if length_grouping:
        rng.shuffle(batches)
    return batches


def shard(batch: list[int], groups: list[str], rank: int, world: int, mode: str) -> list[int]:
    """This process's part of a global batch (whole questions stay on one process in ``question`` mode)."""
    if world == 1:
        return batch
    if mode != "question":
        return batch[rank::world]
    units: list[list[int]] = []
    for i in batch:
        if units and groups[units[-1][0]] == groups[i]:
            units[-1].append(i)
        else:
            units.append([i])
    loads = [0] * world
    mine: list[int] = []
    for u in units:  # greedy balance: each question to the least-loaded process (deterministic on every rank)
        r = min(range(world), key=lambda k: (loads[k], k))
        loads[r] += len(u)
        if r == rank:
            mine.extend(u)
    return mine
