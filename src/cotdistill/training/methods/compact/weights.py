"""COMPACT's weights (METHODS.md §2e, §2f): z-scores, v1's fusion of C, A, D, the paper's branch softmax, the
per-teacher split, warm-up and the per-teacher difficulty EMA (all-reduced under several processes).

Pure functions and one small stateful helper, so every property of §2e can be unit tested without the training
loop; ``paper.py`` and ``v1.py`` wire them into the shared loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.training.distributed import sum_across
from cotdistill.training.methods.compact.options import CompactOptions

_EPS = 1e-8


def zscore(values: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """Z-scores over the present entries of a 1-D tensor; 0 for absent entries, a single entry or ties (no NaN)."""
    values = values.detach().double()
    if present is None:
        present = torch.isfinite(values)
    else:
        present = present & torch.isfinite(values)
    out = torch.zeros_like(values)
    n = int(present.sum())
    if n < 2:
        return out
    v = values[present]
    mean = v.mean()
    std = v.std(unbiased=False)
    if not torch.isfinite(std) or std < 1e-6 * max(1.0, float(mean.abs())) or std < _EPS:
        return out
    out[present] = (v - mean) / std
    return out


@dataclass
class FusedWeights:
    """One question's teacher weights and how they were reached."""

    weights: torch.Tensor  # [K] float64, sums to 1
    scores: torch.Tensor  # [K] fused score s_k (before the softmax)
    cut: torch.Tensor  # [K] bool: removed by the c_min cut
    fallback: bool  # every teacher was cut: the c_min cut was ignored for this question
    uniform: bool  # warm-up (or every coefficient 0): uniform over the teachers that survived the cut


def fuse(
    c: torch.Tensor,
    a: torch.Tensor,
    d: torch.Tensor,
    opts: CompactOptions,
    warmup: bool = False,
) -> FusedWeights:
    """``w_k = softmax_k((lC z(C) + lA z(A) - lD z(D*)) / tau)`` with the ``c_min`` cut; NaN entries are unknown.

    The cut belongs to C: it applies only while C is used (``use_c`` and ``lambda_c > 0``), so every coefficient 0
    is exactly uniform over the teachers, with the default ``c_min``.

    An unknown C (no consensus from the filter stage) is neutral: z = 0 and never cut. An unknown A or D (no answer
    span found) contributes z = 0. When the cut would remove every teacher it is ignored (``fallback``), so the
    weights always sum to 1 and are never NaN.
    """
    k = c.numel()
    c, a, d = c.detach().double(), a.detach().double(), d.detach().double()
    score = torch.zeros(k, dtype=torch.float64)
    if opts.use_c and opts.lambda_c:
        score += opts.lambda_c * zscore(c)
    if opts.use_a and opts.lambda_a:
        score += opts.lambda_a * zscore(a.clamp(-opts.a_clip, opts.a_clip))
    if opts.use_d and opts.lambda_d:
        score -= opts.lambda_d * zscore(d)
    cut = torch.zeros(k, dtype=torch.bool)
    if opts.use_c and opts.lambda_c > 0 and opts.c_min > 0:  # the cut is part of C: coefficient 0 drops it too
        cut = torch.isfinite(c) & (c < opts.c_min)
    fallback = bool(cut.all())
    if fallback:
        cut = torch.zeros(k, dtype=torch.bool)
    logits = torch.zeros(k, dtype=torch.float64) if warmup else score / opts.tau
    logits = logits.masked_fill(cut, -math.inf)
    weights = torch.softmax(logits, dim=0)
    return FusedWeights(weights=weights, scores=score, cut=cut, fallback=fallback, uniform=warmup)


def in_warmup(step: int, total_steps: int, warmup_ratio: float) -> bool:
    """Whether optimizer step ``step`` (0-based) falls in the uniform-weight warm-up."""
    return step < math.ceil(warmup_ratio * max(total_steps, 0))


def weight_entropy(weights: torch.Tensor) -> float:
    """Shannon entropy (nats) of a weight vector; 0 log 0 = 0."""
    w = weights.detach().double()
    w = w[w > 0]
    return float(-(w * w.log()).sum()) if w.numel() else 0.0


class DifficultyEMA:
    """Per-teacher EMA of the student's detached loss: ``D* = (D_k + EMA_k) / 2`` (METHODS.md §2d, §2f).

    Losses are observed per micro-batch and folded in once per optimizer step by :meth:`sync`, after summing every
    process's (sum, count) per teacher: N processes keep the same EMA as one process with the same global batch.
    """

    def __init__(self, mu: float = 0.9) -> None:
        self.mu = mu
        self.ema: dict[str, float] = {}
        self.pending: dict[str, list[float]] = {}

    def smoothed(self, teacher: str, d: float) -> float:
        """``D*`` for a fresh loss ``d`` of ``teacher`` (the EMA before this step's update; ``d`` itself at first)."""
        if not math.isfinite(d):
            return d
        return (d + self.ema.get(teacher, d)) / 2

    def observe(self, per_teacher: Mapping[str, Sequence[float]]) -> None:
        """Add this micro-batch's losses (one per question and teacher) to the step's pending sums."""
        for t, vals in per_teacher.items():
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                acc = self.pending.setdefault(t, [0.0, 0.0])
                acc[0] += sum(vals)
                acc[1] += len(vals)

    def sync(self, world: int = 1) -> None:
        """End of an optimizer step: sum the pending (sum, count) over processes, fold the means into the EMA."""
        pending = sum_across(self.pending, world)
        self.pending = {}
        for t in sorted(pending):
            total, n = pending[t]
            if n <= 0:
                continue
            m = total / n
            self.ema[t] = m if t not in self.ema else self.mu * self.ema[t] + (1 - self.mu) * m

    def update(self, per_teacher: Mapping[str, Sequence[float]]) -> None:
        """Observe and fold in at once (one process, one micro-batch per step)."""
        self.observe(per_teacher)
        self.sync(1)

    def state_dict(self) -> dict[str, Any]:
        return {"mu": self.mu, "ema": dict(self.ema)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.ema = {str(k): float(v) for k, v in state.get("ema", {}).items()}
        self.pending = {}


def adaptability(lp_with: torch.Tensor, lp_without: torch.Tensor, clip: float = 5.0) -> torch.Tensor:
    """``A = mean log p(y*|x,r) - mean log p(y*|x)`` (token means over the answer), clipped; NaN stays NaN."""
    a = lp_with.detach().double() - lp_without.detach().double()
    return torch.where(torch.isfinite(a), a.clamp(-clip, clip), torch.full_like(a, math.nan))


def span_mean_logprob(token_loss: torch.Tensor, spans: Sequence[tuple[int, int] | None]) -> torch.Tensor:
    """Mean log-prob of each row's token span ``[start, end)`` of a per-token CE tensor ``[B, T]``; NaN if None."""
    out = torch.full((token_loss.shape[0],), math.nan, dtype=torch.float64)
    tl = token_loss.detach()
    for i, span in enumerate(spans):
        if span is None:
            continue
        s, e = span
        if e > s:
            out[i] = -float(tl[i, s:e].double().mean())
    return out


def branch_softmax(
    scores: torch.Tensor, teachers: Sequence[str], tau: float = 1.0, uniform: bool = False
) -> torch.Tensor:
    """The paper's ``alpha_k = softmax_k(s_k / tau)`` over a question's branches, with each teacher's weight split
    over its branches: ``softmax_k(s_k / tau - log n_t(k))``. With one branch per teacher (or equal counts) this is
    the plain branch softmax; a teacher's share never grows with its count. ``uniform``: every score 0 (warm-up)."""
    counts = {t: sum(1 for x in teachers if x == t) for t in teachers}
    prior = torch.tensor([-math.log(counts[t]) for t in teachers], dtype=torch.float64)
    s = torch.zeros(len(teachers), dtype=torch.float64) if uniform else scores.detach().double() / tau
    s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
    return torch.softmax(s + prior, dim=0)


def split_over_branches(weights: Mapping[str, float], teachers: Sequence[str]) -> torch.Tensor:
    """v1: each teacher's weight split evenly over its branches on the question (the logged weight is its share)."""
    counts = {t: sum(1 for x in teachers if x == t) for t in teachers}
    return torch.tensor([weights[t] / counts[t] for t in teachers], dtype=torch.float64)


def teacher_shares(alpha: torch.Tensor, teachers: Sequence[str]) -> dict[str, float]:
    """Each teacher's share of a question's weight: the sum of its branches' ``alpha`` (in first-seen order)."""
    out: dict[str, float] = {}
    for a, t in zip(alpha.tolist(), teachers, strict=True):
        out[t] = out.get(t, 0.0) + float(a)
    return out
