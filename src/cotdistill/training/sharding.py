"""FSDP2 for the loop (``train.engine: fsdp``): each student sharded across processes with torch's ``fully_shard``.

Every decoder layer (the classes a model lists in ``_no_split_modules``) and the HF model holding them become
FSDP units, so a process keeps 1/N of each student's weights, gradients and AdamW moments and gathers a layer's
weights only for its forward and backward. Gradients are reduce-scattered as sums (divide factor 1), matching the
loop's rule that each process scales its loss by its share of the global batch. What needs whole tensors (a
checkpoint, the saved student) is gathered here; every function that gathers is a collective, called on every
process in the same order.

FSDP gathers a layer's weights when the layer runs, so every process must run the same forwards of every student
in every micro-batch: only methods that forward each student once per micro-batch on whatever examples it holds
(``Method.fsdp_ready``; QR-Distill and COMPACT even their data-dependent forwards out when ``Method.sharded`` is
set) train under it; the loop gives a process with an empty shard a zero-weight forward (``Batch.weightless``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from cotdistill.errors import ConfigError


def check_fsdp(method: type, cfg: Any) -> None:
    """Refuse, in one line, what FSDP cannot run: a method whose forwards depend on the data (or settings of one
    that make them so), 4-bit students and students placed on their own devices."""
    tc = cfg.train
    if not getattr(method, "fsdp_ready", False):
        raise ConfigError(
            f"train.engine fsdp: method '{tc.method}' runs data-dependent forwards of its students (processes would "
            "gather different layers and deadlock); use train.engine: ddp for this method"
        )
    why = method.fsdp_refusal(dict(tc.options))
    if why:
        raise ConfigError(f"train.engine fsdp: method '{tc.method}': {why}")
    for sc in cfg.students:
        if sc.quantization is not None or sc.device:
            what = "students[].quantization" if sc.quantization is not None else "students[].device"
            raise ConfigError(f"train.engine fsdp: student '{sc.name}' sets {what}, which FSDP does not shard; use ddp")


def rank0_loading() -> bool:
    """Whether only rank 0 reads the students' weights (Accelerate's ``fsdp_cpu_ram_efficient_loading: true``, which
    ``accelerate launch`` passes as ``FSDP_CPU_RAM_EFFICIENT_LOADING``): the other processes build each student on
    the meta device and receive their shards from rank 0 (:func:`fill_from_rank0`)."""
    return os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "").lower() in ("1", "true")


def fill_from_rank0(model: nn.Module, full: dict[str, torch.Tensor], device: torch.device) -> None:
    """After :func:`shard_model`: each process's shards of ``model`` from rank 0's whole weights ``full`` (empty on
    the other ranks, whose model is on the meta device), and every buffer from rank 0 (the rotary frequencies are
    buffers outside the state dict). A collective."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if dist.get_rank() != 0:
        model.to_empty(device=device)
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    for _, buf in model.named_buffers():
        dist.broadcast(buf, 0)


def _units(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """The HF model inside ``model`` (a peft wrapper's base model) and its decoder layers."""
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(hf, "_no_split_modules", None) or [])
    layers = [m for m in hf.modules() if type(m).__name__ in names]
    return hf, layers


def shard_model(model: nn.Module, mesh: Any) -> None:
    """Shard ``model`` in place: its decoder layers, then the HF model (embeddings, final norm, head).

    The root unit is the HF model rather than a peft wrapper so that ``generate`` (which calls the HF model, not
    the wrapper) still gathers the root's weights."""
    from torch.distributed.fsdp import fully_shard

    # FSDP warns of every output that is a view (GPT-2's hidden states are): an in-place op on one would skip a
    # gather in backward; nothing here modifies a model's outputs in place
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(.*\) returned a view tensor")
    hf, layers = _units(model)
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(hf, mesh=mesh)
    for m in [*layers, hf]:
        m.set_gradient_divide_factor(1.0)  # gradients summed over processes, as the loop's loss shares expect
        m.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)


def reshard(students: list[Any]) -> None:
    """Free the gathered weights a no-grad forward left behind: FSDP keeps a root unit gathered after its forward
    until the backward, which a no-grad forward never runs, so until then the module holds the whole weights in
    place of its shards (an optimizer built then would step tensors FSDP then drops). A no-op unsharded."""
    from torch.distributed.fsdp import FSDPModule

    for st in students:
        for m in st.model.modules():
            if isinstance(m, FSDPModule):
                m.reshard()


def device_mesh(device: torch.device, world: int) -> Any:
    """The one-dimensional mesh of all processes on ``device``'s type (gloo on CPU, NCCL on CUDA). On CPU it also
    fixes glibc's mmap threshold (:func:`return_freed_memory`)."""
    from torch.distributed.device_mesh import init_device_mesh

    if device.type == "cpu":
        return_freed_memory()
    return init_device_mesh(device.type, (world,))


MMAP_THRESHOLD = 1 << 20


def return_freed_memory() -> bool:
    """Make glibc map blocks of 1 MiB and more on their own, so that FSDP's per-layer gather buffers, freed after
    each use, leave the process instead of staying resident as heap (glibc's default threshold grows to the
    largest block freed): 0.66x DDP's peak for SmolLM2 full fine-tuning instead of 0.87-0.91x, about 18% slower
    (docs/benchmarks.md). A ``MALLOC_MMAP_THRESHOLD_`` the user set is left alone; False where glibc is absent."""
    import ctypes
    import ctypes.util

    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def is_sharded(t: Any) -> bool:
    """Whether ``t`` is a DTensor (a sharded parameter, gradient or optimizer moment)."""
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind ``t`` (gathered from every process when sharded; a collective)."""
    return t.full_tensor() if is_sharded(t) else t


def like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """``value`` (a whole tensor) laid out as ``param``: this process's shard when ``param`` is sharded."""
    if not is_sharded(param):
        return value
    from torch.distributed.tensor import distribute_tensor

    # every process holds the same whole value, so each takes its own shard without communicating
    value = value.to(param.device, param.dtype)
    return distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=None)


def full_optimizer_state(sd: dict[str, Any], keep: bool = True) -> dict[str, Any]:
    """An optimizer state dict with every sharded moment gathered whole (a collective), for a checkpoint;
    ``keep=False`` (the processes that do not write it) takes part in the gathers one tensor at a time and keeps
    nothing, so only the writing process ever holds the whole state."""
    state: dict[Any, dict[str, Any]] = {}
    for i, s in sd["state"].items():
        whole = {k: full(v).cpu() if is_sharded(v) else v for k, v in s.items()}
        if keep:
            state[i] = whole
    return {**sd, "state": state}


def shard_optimizer_state(sd: dict[str, Any], params: list[nn.Parameter]) -> dict[str, Any]:
    """A checkpoint's whole-tensor optimizer state laid out as ``params`` (the optimizer's, in group order)."""
    state = {}
    for i, s in sd["state"].items():
        p = params[int(i)]
        state[i] = {k: like(v, p) if torch.is_tensor(v) and v.shape == p.shape else v for k, v in s.items()}
    return {**sd, "state": state}


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of ``model`` whole, on the CPU of the main process (empty elsewhere; a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` over parameters some of which are sharded (the students) and some not (a method's
    modules): one global norm over both, every gradient scaled by the same factor."""
    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g for g in grads if is_sharded(g)]
    plain = [g for g in grads if not is_sharded(g)]
    if not sharded:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    norms = [full(torch.nn.utils.get_total_norm(sharded)).float()]
    if plain:
        norms.append(torch.nn.utils.get_total_norm(plain).float().to(norms[0].device))
    total = torch.linalg.vector_norm(torch.stack(norms))
    coef = min(1.0, max_norm / (float(total) + 1e-6))
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total
