"""What several processes exchange each step: summed gradients, the loss values to log, the method's records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def sum_gradients(params: list[nn.Parameter], world: int) -> None:
    """Sum gradients over processes (each already scaled by its share of the batch); a grad missing on one process
    counts 0, and one missing on every process stays missing (as with one process, where the optimizer then skips
    the parameter: no momentum or weight-decay update for a student no path reached)."""
    if world == 1 or not params:
        return
    had = torch.tensor([float(p.grad is not None) for p in params])
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = torch.cat([*(g.reshape(-1) for g in grads), had.to(grads[0].device, grads[0].dtype)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    off = 0
    for g in grads:
        g.copy_(flat[off : off + g.numel()].view_as(g))
        off += g.numel()
    for p, n in zip(params, flat[off:].tolist(), strict=True):
        if n == 0:
            p.grad = None


def reduce_logged(pending: dict[str, float], world: int) -> dict[str, float]:
    """Loss shares summed over processes (each is already weighted by its share); ``scalar/`` values averaged."""
    if world == 1:
        return pending
    from accelerate.utils import gather_object

    out: dict[str, float] = {}
    for d in gather_object([pending]):
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + (v / world if k.startswith("scalar/") else v)
    return out


def gather_records(records: dict[str, list[dict[str, Any]]], world: int) -> dict[str, list[dict[str, Any]]]:
    """Every process's log records, merged in rank order (the main process writes them)."""
    if world == 1:
        return records
    from accelerate.utils import gather_object

    merged: dict[str, list[dict[str, Any]]] = {}
    for r in gather_object([records]):
        for k, v in r.items():
            merged.setdefault(k, []).extend(v)
    return merged


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over processes (a copy; ``t`` itself is returned when there is one process).

    For a method's batch statistics (counts, sums of losses), so that normalisers computed from them are those of
    the whole global batch, as one process would compute them.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` in rank order (``[obj]`` with one process): a method's per-step diagnostics."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def is_main_process() -> bool:
    """Rank 0 of an initialised process group, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first, the others after it (e.g. rank 0 fills an on-disk cache the others then read;
    two processes appending to one cache file at once would interleave their rows). No-op with one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        yield
        return
    if dist.get_rank() != 0:
        dist.barrier()
    yield
    if dist.get_rank() == 0:
        dist.barrier()


def sum_across(values: dict[str, list[float]], world: int) -> dict[str, list[float]]:
    """Element-wise sums of named lists of numbers over processes (a method's batch statistics, e.g. COMPACT's
    per-teacher loss sums and counts), added in rank order so every process gets the same floats."""
    if world == 1:
        return {k: list(v) for k, v in values.items()}
    from accelerate.utils import gather_object

    out: dict[str, list[float]] = {}
    for d in gather_object([values]):
        for k, v in d.items():
            acc = out.setdefault(k, [0.0] * len(v))
            for i, x in enumerate(v):
                acc[i] += x
    return out
