"""COMPACT's graph-based consensus ``C`` (METHODS.md §2a): find the mainstream rationales of a question.

Per question, nodes are its paths; edge weight ``e_ij = max(0, cos(E_i, E_j) - delta) * (1 + eta * [a_i == a_j])``.
A node's consensus is its weighted degree (or weighted PageRank) normalised by the question's maximum, so
``C in [0, 1]``. Paths whose answer is wrong get ``C = 0``: wrong against gold when gold is used, else against the
question's majority answer (ties broken by the answer group's total similarity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np


def answer_groups(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> list[int]:
    """A group id per answer (equivalent answers share one; ``None`` answers get -1, never equal to anything)."""
    reps: list[str] = []
    out = []
    for a in answers:
        if a is None or not str(a).strip():
            out.append(-1)
            continue
        for g, r in enumerate(reps):
            if a == r or same(a, r):
                out.append(g)
                break
        else:
            reps.append(a)
            out.append(len(reps) - 1)
    return out


def edge_weights(emb: np.ndarray, groups: Sequence[int], delta: float, eta: float) -> np.ndarray:
    """The consensus graph's weighted adjacency matrix (zero diagonal)."""
    sim = emb @ emb.T
    w = np.maximum(0.0, sim - delta)
    g = np.asarray(groups)
    agree = (g[:, None] == g[None, :]) & (g[:, None] >= 0)
    w = w * (1.0 + eta * agree)
    np.fill_diagonal(w, 0.0)
    return w


def pagerank(w: np.ndarray, damping: float = 0.85, iters: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Weighted PageRank on a symmetric graph (dangling nodes spread uniformly)."""
    n = w.shape[0]
    out_deg = w.sum(axis=1)
    r = np.full(n, 1.0 / n)
    for _ in range(iters):
        spread = np.where(out_deg > 0, r / np.where(out_deg > 0, out_deg, 1.0), 0.0)
        dangling = r[out_deg == 0].sum()
        new = (1 - damping) / n + damping * (w.T @ spread + dangling / n)
        if np.abs(new - r).sum() < tol:
            r = new
            break
        r = new
    return r


def majority_group(groups: Sequence[int], w_plain: np.ndarray) -> int | None:
    """The most common answer group; ties go to the group whose members are most similar to everyone."""
    counts: dict[int, int] = {}
    for g in groups:
        if g >= 0:
            counts[g] = counts.get(g, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    tied = [g for g, c in counts.items() if c == best]
    if len(tied) == 1:
        return tied[0]
    deg = w_plain.sum(axis=1)
    g_arr = np.asarray(groups)
    return max(tied, key=lambda g: (float(deg[g_arr == g].sum()), -g))


def consensus_scores(
    emb: np.ndarray,
    answers: Sequence[str | None],
    same: Callable[[str, str], bool],
    correct: Sequence[bool] | None = None,
    delta: float = 0.5,
    eta: float = 1.0,
    centrality: Literal["degree", "pagerank"] = "degree",
) -> tuple[list[float], str | None]:
    """Consensus ``C`` per path of one question, and the majority answer (None when ``correct`` is given).

    ``correct`` (answer equals gold, per path) zeroes wrong paths; without it the majority answer decides.
    With no edges at all (one path, or nothing similar), every non-wrong path gets ``C = 1``: nothing
    speaks against it.
    """
    n = len(answers)
    if n == 0:
        return [], None
    groups = answer_groups(answers, same)
    w = edge_weights(emb, groups, delta, eta)
    majority: str | None = None
    if correct is not None:
        wrong = np.array([not c for c in correct])
    else:
        w_plain = edge_weights(emb, [-1] * n, delta, 0.0)
        mg = majority_group(groups, w_plain)
        g_arr = np.asarray(groups)
        wrong = (g_arr != mg) if mg is not None else np.ones(n, dtype=bool)
        if mg is not None:
            majority = answers[int(np.argmax(g_arr == mg))]
    score = pagerank(w) if centrality == "pagerank" else w.sum(axis=1)
    score = np.where(wrong, 0.0, score)
    top = float(score.max())
    c = score / top if top > 0 else np.where(wrong, 0.0, 1.0)
    return [float(x) for x in np.clip(c, 0.0, 1.0)], majority


__all__ = ["answer_groups", "auroc", "consensus_scores", "edge_weights", "majority_group", "pagerank"]


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` separating positives from negatives (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positives and negatives")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
