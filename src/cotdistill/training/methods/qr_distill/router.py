"""QR-Distill's conditional router (METHODS.md §1c): frozen encoder, trainable MLP, straight-through gates.

A frozen sentence encoder embeds each path once (question + path text, cached for the run); a small MLP
``d -> d/2 -> GELU -> S`` gives one logit per student; an independent straight-through Gumbel-sigmoid gate per
(path, student) decides who trains on the path. The router learns through the gate-weighted per-student losses
(:func:`gated_student_loss`), and a binary-entropy regulariser on the mean gate keeps routing from collapsing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cotdistill.errors import ConfigError


class Router(nn.Module):
    """One logit per student for each path embedding: ``Linear(d, d/2) -> GELU -> Linear(d/2, S)``."""

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
        self.dim = dim
        self.n_students = n_students

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """``[N, d]`` embeddings -> ``[N, S]`` routing logits."""
        return self.net(emb)


@dataclass
class Gates:
    """Sampled routing decisions for a batch of paths.

    ``gates`` is ``[N, S]``: exactly 0/1 in the forward pass, carrying the soft sample's gradient in the backward
    pass (straight-through). ``prob`` is ``sigmoid(logits)`` (the noise-free opening probability, for logs);
    ``fallback`` marks paths no gate opened for, which went to their top-logit student. ``decisions`` is
    ``gates`` before the fallback rule (the router's own sampled decisions, straight-through): the entropy
    regulariser reads it.
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


def sample_gates(
    logits: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None, fallback: bool = True
) -> Gates:
    """Straight-through Gumbel-sigmoid gates, one independent gate per (path, student).

    Logistic noise ``log u - log(1-u)`` (the difference of two Gumbels) is added to the logits; the soft sample is
    ``sigmoid((logit + noise) / tau)`` and the hard gate is ``soft > 0.5``. The forward value is the hard gate,
    the gradient that of the soft one. A path with no open gate opens its top-logit student's gate, still
    straight-through, so the router also learns from fallbacks. ``generator`` (CPU) makes the noise reproducible.
    """
    if tau <= 0:
        raise ConfigError(f"router temperature tau must be > 0, got {tau}")
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float32).to(logits.device)
    u = u.clamp(1e-6, 1.0 - 1e-6)
    noise = torch.log(u) - torch.log1p(-u)
    soft = torch.sigmoid((logits.float() + noise) / tau)
    hard = (soft.detach() > 0.5).float()
    decisions = hard + (soft - soft.detach())
    none_open = hard.sum(dim=1) == 0
    if fallback and bool(none_open.any()):
        top = logits.detach().argmax(dim=1)
        forced = torch.zeros_like(hard)
        forced[torch.arange(hard.shape[0], device=hard.device), top] = 1.0
        hard = torch.where(none_open[:, None], forced, hard)
    gates = hard + (soft - soft.detach())  # exactly 0/1 forward
    prob = torch.sigmoid(logits.detach().float())
    return Gates(gates=gates, soft=soft, prob=prob, fallback=none_open, decisions=decisions)


def all_open(n_paths: int, n_students: int, device: torch.device | str = "cpu") -> Gates:
    """Routing off (ablation "w/o Route"): every path goes to every student."""
    ones = torch.ones(n_paths, n_students, device=device)
    none = torch.zeros(n_paths, dtype=torch.bool, device=device)
    return Gates(gates=ones, soft=ones, prob=ones, fallback=none, decisions=ones)


def gate_entropy(gates: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary entropy ``H(gbar)`` (nats) of the batch's mean gate; maximised (loss ``-lambda1 * H``).

    Pass the router's sampled gates (:attr:`Gates.decisions`), not the gates after the fallback rule: with the
    fallback counted, "every gate shut, each path forced to one of two students" already has ``gbar = 1/2`` and
    maximal entropy, so the regulariser would drive the router there (measured on the demo: fallback on 60-100%
    of paths, whole batches sent to one student) instead of keeping its gates undecided.

    ``gbar`` is squeezed into ``[eps, 1-eps]`` affinely (not clamped) so the gradient never vanishes at 0 or 1.
    """
    gbar = gates.float().mean()
    gbar = eps + (1.0 - 2.0 * eps) * gbar
    return -(gbar * torch.log(gbar) + (1.0 - gbar) * torch.log1p(-gbar))


def gated_student_loss(ce: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``sum_j g_j * CE(r_j) / max(1, sum_j g_j)`` for one student over a batch of paths.

    ``ce`` holds the student's loss on every path of the batch (with gradient where the gate is open). The value
    is exactly METHODS.md's; the gradient on gate ``j`` is ``(CE_j - L) / n``: open a gate where the student's
    loss is below its current average (the path suits it), close it where it is above. Written as
    ``sum_j g_j (CE_j - b) / max(1, n) + b * min(1, n)`` with ``b`` the student's detached batch-mean loss, which
    changes nothing while a gate is open but keeps the gradient centred when none is: with the plain form an empty
    student gets ``+CE_j`` on every gate, is pushed further shut, and never comes back (routing collapse).
    """
    gate = gate.to(ce.dtype)
    b = ce.detach().mean()
    n = gate.sum()
    return (gate * (ce - b)).sum() / n.clamp(min=1.0) + b * n.detach().clamp(max=1.0)
