"""COMPACT under FSDP (``Method.sharded``): every process runs the same forwards of the student in every batch.

FSDP gathers a layer's weights in each forward (and again in its backward), so the data-dependent passes of the
paper variant are evened out: a process whose batch needs no gold pass runs a stand-in one, and every process
runs as many continuation forwards (the answer sentence after a branch's own cache) as the process that needs
the most, the extra ones on a one-token stand-in whose logits enter the loss at zero weight.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from cotdistill.students.encoding import pad_id
from cotdistill.training.methods.base import StudentHandle


def stand_in_forward(student: StudentHandle, dev: torch.device) -> torch.Tensor:
    """One forward of the student on a one-token row (its pad token): the logits, with gradient if enabled."""
    ids = torch.tensor([[pad_id(student.tokenizer)]], dtype=torch.long, device=dev)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(getattr(student, "bf16", False))):
        return student.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits


def most_across(n: int, device: torch.device) -> int:
    """The largest ``n`` over all processes (``n`` itself with one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return n
    t = torch.tensor([n], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def stand_in_forwards(student: StudentHandle, n: int, dev: torch.device) -> torch.Tensor:
    """``n`` stand-in forwards with gradient; their logits times zero (a loss term that keeps them in the
    backward, so every process also reduces the same gradients)."""
    zero = torch.zeros((), device=dev)
    for _ in range(n):
        zero = zero + stand_in_forward(student, dev).float().sum() * 0.0
    return zero
