"""QR-Distill's batch statistics over all processes, so N processes take the same steps as one.

QR-Distill's losses are normalised by counts that belong to the whole global batch: a student's open gates
``n_s`` (the gated mean), its mean and std loss (the router's centring and scale), the mean gate ``gbar`` (the
entropy), the co-routed paths (``L_mutual`` and the competence loss are means over them). Each process sums its
shard's part; one all-reduce per micro-batch gives the global values on every process.

The loop scales a process's loss by its share of the batch's examples and sums the gradients over processes.
:func:`globalise` turns a process's local contribution to a global mean into a loss that has the global value and,
after that scaling and summing, exactly the global gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cotdistill.training.distributed import all_sum


@dataclass
class StepStats:
    """Global statistics of one micro-batch (all processes); ``local_paths`` is this process's count."""

    local_paths: int
    n_paths: float
    n_open: torch.Tensor  # [S] gates open after the fallback rule
    ce_mean: torch.Tensor  # [S] mean loss over the batch's paths
    ce_std: torch.Tensor  # [S] std of the loss over the batch's paths
    gated_ce: torch.Tensor  # [S] sum_j g_js CE_js
    decisions: float  # sum of the router's own sampled decisions (before the fallback rule)
    fallback: float  # paths that fell back
    co_rows: float  # paths taken by >= 2 students (peer teaching)
    mutual: float  # sum of the per-path L_mutual values
    competence: float  # sum of the per-path competence CE values

    @property
    def frac(self) -> float:
        """This process's share of the batch's paths (1 with one process)."""
        return self.local_paths / max(self.n_paths, 1.0)

    def gated_mean(self) -> torch.Tensor:
        """``[S]`` METHODS.md's per-student loss ``sum_j g_js CE_js / max(1, n_s)`` over the global batch."""
        return self.gated_ce / self.n_open.clamp(min=1.0)


def reduce_stats(
    ce: torch.Tensor,
    hard: torch.Tensor,
    decisions: torch.Tensor,
    fallback: torch.Tensor,
    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> StepStats:
    """Sum this process's statistics with every other's (one all-reduce). ``ce`` and ``hard`` are ``[N, S]``,
    ``decisions`` ``[N, S]``, ``fallback`` ``[N]``, ``rows`` the per-co-routed-path (mask, mutual, competence)."""
    n, s = ce.shape
    dev = ce.device
    f64 = (
        torch.float64
    )  # the variance is E[x^2] - E[x]^2: in float32 it loses most of its digits (losses ~6, std ~0.01)
    ce = ce.detach().to(f64)
    g = hard.to(dev).to(f64)
    co, mut, comp = rows
    local = torch.cat([
        torch.tensor([float(n)], device=dev, dtype=f64), g.sum(0), ce.sum(0), (ce * ce).sum(0), (g * ce).sum(0),
        torch.stack([decisions.detach().to(f64).sum().to(dev), fallback.to(f64).sum().to(dev),
                     co.to(f64).sum().to(dev), mut.detach().to(f64).sum().to(dev),
                     comp.detach().to(f64).sum().to(dev)]),
    ])  # fmt: skip
    return _parsed(all_sum(local), n, s)


def _parsed(tot: torch.Tensor, local_paths: int, s: int) -> StepStats:
    """The all-reduced vector of :func:`reduce_stats` as :class:`StepStats`."""
    n_g = float(tot[0])
    mean = tot[1 + s : 1 + 2 * s] / max(n_g, 1.0)
    var = (tot[1 + 2 * s : 1 + 3 * s] / max(n_g, 1.0) - mean * mean).clamp(min=0.0)
    tail = tot[1 + 4 * s :].tolist()
    f32 = torch.float32
    return StepStats(
        local_paths=local_paths, n_paths=n_g, n_open=tot[1 : 1 + s].to(f32), ce_mean=mean.to(f32),
        ce_std=var.sqrt().to(f32), gated_ce=tot[1 + 3 * s : 1 + 4 * s].to(f32), decisions=tail[0],
        fallback=tail[1], co_rows=tail[2], mutual=tail[3], competence=tail[4],
    )  # fmt: skip


def empty_stats(n_students: int, device: torch.device | str = "cpu") -> StepStats:
    """Join :func:`reduce_stats`'s all-reduce from a process with no path in this micro-batch (zeros); the global
    statistics it returns are the other processes'."""
    zeros = torch.zeros(1 + 4 * n_students + 5, device=device, dtype=torch.float64)
    return _parsed(all_sum(zeros), 0, n_students)


def globalise(value: torch.Tensor | float, local: torch.Tensor, frac: float) -> torch.Tensor:
    """A loss whose value is the global ``value`` and whose gradient, once the loop has scaled it by this
    process's share ``frac`` and summed it over processes, is the global gradient of which ``local`` (this
    process's part of the global mean, with gradient) is the local term. With one process: ``value`` with
    ``local``'s gradient."""
    v = torch.as_tensor(value, dtype=local.dtype, device=local.device)
    return v.detach() + (local - local.detach()) / max(frac, 1e-12)
