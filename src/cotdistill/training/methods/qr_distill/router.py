"""QR-Distill's conditional router (METHODS.md §1c): frozen encoder, trainable MLP, straight-through gates.

A frozen sentence encoder embeds each path once (question + path text, cached for the run); the embeddings are
standardised per dimension over the training set (unit-normalised sentence vectors have coordinates of about
``1/sqrt(d)`` around a large common mean, which leaves a default-initialised MLP almost blind to the paths); a
small MLP ``d -> d/2 -> GELU -> S`` gives one logit per student; an independent straight-through Gumbel-sigmoid
gate per (path, student) decides who trains on the path. The gate noise is a pure function of (seed, step, path):
no generator state, the same draws however the batch is split over processes. The router learns through the
gate-weighted per-student losses (:func:`gated_student_loss`), and a binary-entropy regulariser on the mean gate
keeps routing from collapsing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cotdistill.errors import ConfigError


class Router(nn.Module):
    """One logit per student for each path embedding: ``Linear(d, d/2) -> GELU -> Linear(d/2, S)``.

    ``in_mean`` / ``in_scale`` (buffers, saved) standardise the input; identity until :meth:`fit_input` is called.
    """

    def __init__(self, dim: int, n_students: int, seed: int = 0) -> None:
        super().__init__()
        hidden = max(1, dim // 2)
        gen = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, n_students))
        with torch.no_grad():  # seeded init, independent of the global RNG
            for layer in (self.net[0], self.net[2]):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.copy_(torch.empty_like(layer.weight).uniform_(-bound, bound, generator=gen))
                layer.bias.zero_()
        self.register_buffer("in_mean", torch.zeros(dim), persistent=True)
        self.register_buffer("in_scale", torch.ones(dim), persistent=True)
        self.dim = dim
        self.n_students = n_students

    def fit_input(self, emb: torch.Tensor, eps: float = 1e-4) -> None:
        """Standardise the inputs by the per-dimension mean and std of ``emb`` (the training set's embeddings)."""
        with torch.no_grad():
            emb = emb.float()
            self.in_mean.copy_(emb.mean(0))
            std = emb.std(0, unbiased=False) if emb.shape[0] > 1 else torch.ones_like(self.in_scale)
            self.in_scale.copy_(1.0 / std.clamp(min=eps))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """``[N, d]`` embeddings -> ``[N, S]`` routing logits."""
        return self.net((emb.float() - self.in_mean) * self.in_scale)


def path_uniforms(keys: list[str], n: int, seed: int, step: int) -> torch.Tensor:
    """``[len(keys), n]`` uniforms in (0, 1), each row a pure function of (seed, step, key).

    The gate noise of a path does not depend on which process holds it or on what else is in its batch, so N
    processes draw exactly the gates one process draws (and a resumed run the gates of the uninterrupted one).
    """
    out = np.empty((len(keys), n), dtype=np.float64)
    for i, k in enumerate(keys):
        h = int.from_bytes(hashlib.blake2b(k.encode("utf-8"), digest_size=8).digest(), "little")
        out[i] = np.random.default_rng([seed & 0xFFFFFFFF, step, h & 0xFFFFFFFF, h >> 32]).random(n)
    return torch.from_numpy(out).float()


@dataclass
class Gates:
    """Sampled routing decisions for a batch of paths.

    ``gates`` is ``[N, S]``: exactly 0/1 in the forward pass, carrying the soft sample's gradient in the backward
    pass (straight-through). ``prob`` is ``sigmoid(logits)`` (the noise-free opening probability, for logs);
    ``fallback`` marks paths no gate opened for, which went to the student with the largest noisy score.
    ``decisions`` is ``gates`` before the fallback rule (the router's own sampled decisions, straight-through):
    the entropy regulariser and the "without fallbacks" selection rates read it.
    """

    gates: torch.Tensor
    soft: torch.Tensor
    prob: torch.Tensor
    fallback: torch.Tensor  # [N] bool
    decisions: torch.Tensor

    @property
    def hard(self) -> torch.Tensor:
        """The 0/1 decisions as a bool tensor (no gradient)."""
        return self.gates.detach() > 0.5

    @property
    def own(self) -> torch.Tensor:
        """The router's own 0/1 decisions (before the fallback rule) as a bool tensor."""
        return self.decisions.detach() > 0.5


def sample_gates(
    logits: torch.Tensor,
    tau: float = 1.0,
    generator: torch.Generator | None = None,
    fallback: bool = True,
    uniform: torch.Tensor | None = None,
) -> Gates:
    """Straight-through Gumbel-sigmoid gates, one independent gate per (path, student).

    Logistic noise ``log u - log(1-u)`` (the difference of two Gumbels) is added to the logits; the soft sample is
    ``sigmoid((logit + noise) / tau)`` and the hard gate is ``soft > 0.5``. The forward value is the hard gate,
    the gradient that of the soft one. A path with no open gate opens the gate of the student with the largest
    noisy score ``logit + noise`` (exact ties broken at random, never by index), still straight-through.
    ``uniform`` (``[N, 2S]``: noise, then tie-breakers) gives the draws; else ``generator`` (CPU) draws them.
    """
    if tau <= 0:
        raise ConfigError(f"router temperature tau must be > 0, got {tau}")
    n, s = logits.shape
    if uniform is None:
        uniform = torch.rand((n, 2 * s), generator=generator, dtype=torch.float32)
    u = uniform[:, :s].to(logits.device).clamp(1e-6, 1.0 - 1e-6)
    noise = torch.log(u) - torch.log1p(-u)
    noisy = logits.float() + noise
    soft = torch.sigmoid(noisy / tau)
    hard = (soft.detach() > 0.5).float()
    decisions = hard + (soft - soft.detach())
    none_open = hard.sum(dim=1) == 0
    if fallback and bool(none_open.any()):
        score = noisy.detach()
        tied = score == score.max(dim=1, keepdim=True).values
        tiebreak = uniform[:, s : 2 * s].to(logits.device) if uniform.shape[1] >= 2 * s else torch.rand_like(score)
        top = torch.where(tied, tiebreak + 1.0, torch.zeros_like(score)).argmax(dim=1)
        forced = torch.zeros_like(hard)
        forced[torch.arange(n, device=hard.device), top] = 1.0
        hard = torch.where(none_open[:, None], forced, hard)
    gates = hard + (soft - soft.detach())  # exactly 0/1 forward
    prob = torch.sigmoid(logits.detach().float())
    return Gates(gates=gates, soft=soft, prob=prob, fallback=none_open & fallback, decisions=decisions)


def all_open(n_paths: int, n_students: int, device: torch.device | str = "cpu") -> Gates:
    """Routing off (ablation "w/o Route"): every path goes to every student."""
    ones = torch.ones(n_paths, n_students, device=device)
    none = torch.zeros(n_paths, dtype=torch.bool, device=device)
    return Gates(gates=ones, soft=ones, prob=ones, fallback=none, decisions=ones)


def entropy_of(gbar: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary entropy (nats) of a mean gate, squeezed into ``[eps, 1-eps]`` affinely (not clamped) so the gradient
    never vanishes at 0 or 1."""
    gbar = eps + (1.0 - 2.0 * eps) * gbar
    return -(gbar * torch.log(gbar) + (1.0 - gbar) * torch.log1p(-gbar))


def gate_entropy(gates: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary entropy ``H(gbar)`` (nats) of the batch's mean gate; maximised (loss ``-lambda1 * H``).

    Pass the router's sampled gates (:attr:`Gates.decisions`), not the gates after the fallback rule: with the
    fallback counted, "every gate shut, each path forced to one of two students" already has ``gbar = 1/2`` and
    maximal entropy, so the regulariser would drive the router there (measured on the demo: fallback on 60-100%
    of paths, whole batches sent to one student) instead of keeping its gates undecided.
    """
    return entropy_of(gates.float().mean(), eps)


def router_signal(ce: torch.Tensor, baseline: torch.Tensor, scale: torch.Tensor, n_paths: float) -> torch.Tensor:
    """What the router sees for each (path, student): the centred loss ``(CE_js - b_s) / scale_s / N`` (detached).

    ``baseline`` is the student's mean loss over the (global) batch, ``scale`` its std there ('zscore') or 1
    ('raw'). The target is METHODS.md's: a gate whose student's loss on the path is below the student's average
    gets a negative gradient (descent opens it), one above gets a positive one.
    """
    return (ce.detach().float() - baseline) / scale / max(n_paths, 1.0)


def gated_student_loss(
    ce: torch.Tensor, gate: torch.Tensor, n_open: torch.Tensor | None = None, signal: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_j g_j * CE(r_j) / max(1, n)`` for one student over a batch of paths, ``n = sum_j g_j``.

    ``ce`` holds the student's loss on every path of the batch (with gradient where the gate is open). The value
    and the students' gradient are exactly METHODS.md's. The gradient on gate ``j`` is ``signal[j]`` (see
    :func:`router_signal`; default: the student's centred loss ``(CE_j - b) / max(1, n)``, ``b`` its detached
    batch mean): open a gate where the student's loss is below its average (the path suits it), close it where it
    is above. Centring on the batch mean, not on the mean over the open paths, keeps the gradient centred when no
    gate is open: with the plain form an empty student gets ``+CE_j`` on every gate, is pushed further shut, and
    never comes back (routing collapse). ``n_open`` overrides ``n`` (the count over the whole, multi-process batch).
    """
    gate = gate.to(ce.dtype)
    n = gate.detach().sum() if n_open is None else n_open.to(ce.dtype)
    if signal is None:
        signal = (ce.detach() - ce.detach().mean()) / n.clamp(min=1.0)
    student = (gate.detach() * ce).sum() / n.clamp(min=1.0)
    return student + (gate * signal.to(ce.dtype)).sum() - (gate.detach() * signal.to(ce.dtype)).sum()
