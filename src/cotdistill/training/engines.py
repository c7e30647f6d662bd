"""Which engine a training run uses: one process, DDP (the loop sums gradients across processes) or FSDP2
(``training.sharding``), from Accelerate's launch and ``train.engine``; what no engine here runs is refused."""

from __future__ import annotations

from typing import Any

from cotdistill.errors import CotdistillError
from cotdistill.training.sharding import check_fsdp, rank0_loading


def engine_name(distributed_type: Any) -> str:
    """Accelerate's ``DistributedType`` as its bare name (``FSDP``, ``DEEPSPEED``, ``MULTI_GPU``, ...)."""
    return str(distributed_type).rsplit(".", 1)[-1]


def check_engine(distributed_type: Any) -> None:
    """The engines the loop supports: one process, DDP (CPU gloo / GPU NCCL) and FSDP2 (``training.sharding``);
    DeepSpeed is refused in one line (its engine takes one model per Accelerator, QR-Distill trains several)."""
    if engine_name(distributed_type) == "DEEPSPEED":
        raise CotdistillError(
            "accelerate's DEEPSPEED engine: cotdistill does not run DeepSpeed (one model per Accelerator, while "
            "methods train several students); launch with a DDP config (configs/accelerate/cpu-ddp.yaml, "
            "gpu-ddp.yaml) or FSDP (configs/accelerate/fsdp.yaml, train.engine: fsdp)"
        )


def wants_fsdp(engine: str, distributed_type: Any, world: int) -> bool:
    """Whether the loop shards students: ``train.engine: fsdp``, or ``auto`` under an Accelerate FSDP config; never
    with one process (there is nothing to shard across)."""
    return world > 1 and (engine == "fsdp" or (engine == "auto" and engine_name(distributed_type) == "FSDP"))


def choose(acc: Any, method: type, cfg: Any) -> bool:
    """Whether this run shards its students (FSDP), after refusing an engine or combination that cannot run."""
    check_engine(acc.distributed_type)
    fsdp = wants_fsdp(cfg.train.engine, acc.distributed_type, acc.num_processes)
    if fsdp:
        check_fsdp(method, cfg)
    elif acc.num_processes > 1 and rank0_loading():
        raise CotdistillError(
            "fsdp_cpu_ram_efficient_loading (FSDP_CPU_RAM_EFFICIENT_LOADING) reads the students' weights on rank 0 "
            "only, which needs train.engine: fsdp; set it false to train with ddp"
        )
    elif cfg.train.engine == "fsdp" and acc.num_processes == 1:
        acc.print("note: train.engine fsdp with one process: nothing to shard across, the students stay whole")
    return fsdp
