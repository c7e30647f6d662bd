"""The students as the loop trains them: each built as training starts it, placed on its device, with gradient
checkpointing if asked, and under FSDP sharded across the processes (``training.sharding``), its weights read
by every process or, with rank-0 loading, by rank 0 alone and sent to the others' shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cotdistill.config import RunConfig, StudentConfig
from cotdistill.training import sharding
from cotdistill.training.student import Student


def student_device(sc: StudentConfig, default: torch.device) -> torch.device:
    """Where student ``sc`` lives: its ``students[].device``, else the loop's (Accelerate's) device."""
    return torch.device(sc.device) if getattr(sc, "device", None) else default


def build_students(
    cfg: RunConfig, acc: Any, texts: list[str] | None, tokenizers: Path, mesh: Any, bf16: bool
) -> list[Student]:
    """Every student of ``cfg`` ready to train (``mesh``: FSDP's device mesh, None unsharded). A collective under
    FSDP: every process builds the students in the same order."""
    from cotdistill.students.build import initial_student

    from_rank0 = mesh is not None and sharding.rank0_loading()
    on_meta = from_rank0 and not acc.is_main_process  # built on the meta device, filled from rank 0
    out = []
    for i, sc in enumerate(cfg.students):
        with acc.main_process_first():  # rank 0 trains/caches the tokenizer, the others read it
            b = initial_student(sc, i, cfg.seed, texts, tokenizers, meta=on_meta)
        device = student_device(sc, acc.device)
        if sc.quantization is None and not on_meta:  # a 4-bit model is placed when it loads and cannot be moved
            b.model.to(device)
        full = b.model.state_dict() if from_rank0 and not on_meta else {}
        if cfg.train.gradient_checkpointing:
            b.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if mesh is not None:
            sharding.shard_model(b.model, mesh)
            if from_rank0:
                sharding.fill_from_rank0(b.model, full, device)
        del full
        b.model.train()
        out.append(Student(sc.name, b.model, b.tokenizer, device, bf16, b.lora))
    return out
