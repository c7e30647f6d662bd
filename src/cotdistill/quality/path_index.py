"""A byte-offset index of ``paths.jsonl`` grouped by question, so a stage can read one batch of whole questions
at a time without holding every path (memory stays flat in the number of paths)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cotdistill.errors import InputError
from cotdistill.records import ReasoningPath, iter_jsonl


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


def index_paths(file: Path) -> PathIndex:
    """One validating pass over paths.jsonl: byte offsets per question (duplicate path ids: the first one wins).

    Kept per path: an offset, a question number and an id hash (20 bytes while indexing, 8 after); a set of every
    id string and an array per question took about 140 and 280 bytes. Ids whose hashes repeat are compared for
    real in a second pass, run only when any do.
    """
    if not file.exists():
        raise InputError(file, "file not found (run `cotdistill generate` or `cotdistill import` first)")
    qnum: dict[str, int] = {}
    qn, offs, hashes = array("i"), array("q"), array("q")
    for start, p in iter_jsonl(file, ReasoningPath, allow_empty=True):
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


def _first_occurrences(file: Path, offsets: np.ndarray, hashes: array) -> np.ndarray | None:
    """Mask over paths in file order, False for a later occurrence of an id; None when every id is unique."""
    h = np.frombuffer(hashes, dtype=np.int64)
    h.sort()  # in place: the hashes are not needed in file order
    repeated = set(h[1:][h[1:] == h[:-1]].tolist())
    if not repeated:
        return None
    keep = np.ones(len(offsets), dtype=bool)
    seen: set[str] = set()
    for start, p in iter_jsonl(file, ReasoningPath, allow_empty=True):
        if hash(p.id) not in repeated:
            continue
        if p.id in seen:
            keep[int(np.searchsorted(offsets, start))] = False  # offsets are in file order, so sorted
        seen.add(p.id)
    return keep
