"""AdamW with one parameter group per student (its own learning rate) plus the method's modules, and the
linear warm-up + cosine schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cotdistill.config import StudentConfig, TrainConfig


def build_optimizer(
    students: list[Any], configs: list[StudentConfig], modules: dict[str, nn.Module], module_lr: float,
    tc: TrainConfig, total_steps: int,
) -> tuple[torch.optim.Optimizer, Any]:  # fmt: skip
    """The optimizer (groups named after the students, ``method`` for the modules) and its scheduler."""
    from transformers import get_cosine_schedule_with_warmup

    groups = []
    for s, sc in zip(students, configs, strict=True):
        params = [p for p in s.model.parameters() if p.requires_grad]
        groups.append({"params": params, "lr": sc.lr, "name": s.name})
    mparams = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    if mparams:
        groups.append({"params": mparams, "lr": module_lr, "name": "method"})
    opt = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
    warm = int(round(tc.warmup_ratio * total_steps))
    sched = get_cosine_schedule_with_warmup(opt, warm, max(1, total_steps))
    return opt, sched
