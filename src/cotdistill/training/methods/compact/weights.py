"""COMPACT's per-question teacher weights (METHODS.md §2): consensus C, adaptability A, difficulty D, fusion.

Pure functions and one small stateful helper (the per-teacher difficulty EMA), so every property of §2e can be
unit tested without the training loop. ``training/methods/compact.py`` wires them into the shared loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.records import Question
from cotdistill.tasks import get_family
from cotdistill.tasks.base import marker_spans, strip_thinking
from cotdistill.tasks.math import NUMBER
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
    if opts.use_c and opts.c_min > 0:
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
    """Per-teacher EMA of the student's detached loss: ``D* = (D_k + EMA_k) / 2`` (METHODS.md §2c)."""

    def __init__(self, mu: float = 0.9) -> None:
        self.mu = mu
        self.ema: dict[str, float] = {}

    def smoothed(self, teacher: str, d: float) -> float:
        """``D*`` for a fresh loss ``d`` of ``teacher`` (the EMA before this step's update; ``d`` itself at first)."""
        if not math.isfinite(d):
            return d
        return (d + self.ema.get(teacher, d)) / 2

    def update(self, per_teacher: Mapping[str, Sequence[float]]) -> None:
        """Fold one step's losses (all questions of the batch) into each teacher's EMA."""
        for t, vals in per_teacher.items():
            vals = [v for v in vals if math.isfinite(v)]
            if not vals:
                continue
            m = sum(vals) / len(vals)
            self.ema[t] = m if t not in self.ema else self.mu * self.ema[t] + (1 - self.mu) * m

    def state_dict(self) -> dict[str, Any]:
        return {"mu": self.mu, "ema": dict(self.ema)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.ema = {str(k): float(v) for k, v in state.get("ema", {}).items()}


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


def answer_char_span(text: str, question: Question) -> tuple[int, int] | None:
    """Character span of the final answer stated in ``text`` when it equals the gold answer; None otherwise.

    The answer after the last marker ("The answer is 42.") when there is one, else (paths written without a
    marker, like many real datasets) the last number / option / word in the text that matches the gold answer.
    """
    if strip_thinking(text) is None:  # cut off mid-thought: no final answer
        return None
    family = get_family(question.task)
    spans = marker_spans(text)
    if spans:
        pos, line = spans[-1]
        start = text.index(line, pos)
        seg = line.rstrip().rstrip(".;:!").rstrip()
        if seg and family.equivalent(family.extract(text[pos:], question, lenient=True), question.gold):
            return start, start + len(seg)
        return None  # the path states another answer: log p(y*|x, r) is not on its tokens
    if question.task == "math":
        cands = list(NUMBER.finditer(text))
        for m in reversed(cands):
            if family.equivalent(m.group(0).strip(), question.gold):
                return m.start(), m.end()
        return None
    gold = family.canonical_gold(question.gold, question)
    words = [gold]
    if question.task == "choice" and question.choices:
        idx = ord(gold.upper()[0]) - ord("A") if gold else -1
        if 0 <= idx < len(question.choices):
            words.append(question.choices[idx])
    best: tuple[int, int] | None = None
    for w in words:
        if not w:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE):
            if best is None or m.start() > best[0]:
                best = (m.start(), m.end())
    return best


def char_to_token_span(offsets: Sequence[tuple[int, int]], char_span: tuple[int, int]) -> tuple[int, int] | None:
    """The tokens ``[start, end)`` whose character offsets overlap ``char_span`` (offsets of one text)."""
    cs, ce = char_span
    idx = [i for i, (s, e) in enumerate(offsets) if e > s and s < ce and e > cs]
    if not idx:
        return None
    return idx[0], idx[-1] + 1
