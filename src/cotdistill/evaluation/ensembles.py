"""Student ensembles: a majority vote over extracted answers, or the answer of the most confident student."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def _group(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> list[tuple[str, list[int]]]:
    """Answers grouped by equivalence, groups in order of first appearance: (representative, student indices)."""
    groups: list[tuple[str, list[int]]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for rep, members in groups:
            if same(a, rep):
                members.append(i)
                break
        else:
            groups.append((a, [i]))
    return groups


def vote(answers: Sequence[str | None], same: Callable[[str, str], bool] | None = None) -> str | None:
    """Majority vote over extracted answers (None abstains); a tie goes to the answer of the earliest student.

    ``same`` decides whether two answers agree (default: equal strings; eval passes the task family's equivalence).
    """
    groups = _group(answers, same or (lambda a, b: a == b))
    if not groups:
        return None
    best = max(len(m) for _, m in groups)
    return next(rep for rep, m in groups if len(m) == best)  # groups are in first-appearance (student) order


def logprob_pick(answers: Sequence[str | None], scores: Sequence[float]) -> str | None:
    """The answer of the student whose generation has the highest mean token log-prob.

    Students with no extracted answer are passed over (None only when nobody answered); ties go to the earliest.
    """
    if len(answers) != len(scores):
        raise ValueError("one score per answer")
    best_i = None
    for i, (a, s) in enumerate(zip(answers, scores, strict=True)):
        if a is None or s is None or math.isnan(s):
            continue
        if best_i is None or s > scores[best_i]:
            best_i = i
    return None if best_i is None else answers[best_i]
