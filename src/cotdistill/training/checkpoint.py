"""Checkpoints in ``RUN/checkpoints/step-<N>/``: trainable weights, optimizer, scheduler, method state and
modules, the epoch's batch order and position, each log's length, and every process's RNG state.

A checkpoint directory appears whole (written to a temp directory, then renamed); only the newest
``train.keep_checkpoints`` are kept.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cotdistill.errors import CotdistillError
from cotdistill.training.rng import rng_state, set_rng_state


@dataclass
class LoopState:
    """Where training is: what a checkpoint holds besides weights and optimizer state."""

    step: int = 0
    epoch: int = 0
    micro: int = 0  # next micro-batch index inside the epoch
    batches: list[list[int]] | None = None
    best: dict[str, float] = field(default_factory=dict)
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "micro": self.micro, "batches": self.batches,
                "best": self.best, "tokens": self.tokens}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        return cls(step=d["step"], epoch=d["epoch"], micro=d["micro"], batches=d["batches"], best=d["best"],
                   tokens=d["tokens"])  # fmt: skip


class CheckpointStore:
    """Save, list and load the loop's checkpoints; ``acc`` is the Accelerator (barriers, rank, main process)."""

    def __init__(self, root: Path, acc: Any, keep: int):
        self.root, self.acc, self.keep = root, acc, keep

    def list(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.glob("step-*") if p.is_dir() and (p / "state.pt").exists())

    def clear(self) -> None:
        if self.acc.is_main_process:
            shutil.rmtree(self.root, ignore_errors=True)

    def save(self, st: LoopState, payload: dict[str, Any]) -> None:
        """Write ``st`` plus ``payload`` (weights, optimizer, ...; main process) and every rank's RNG state."""
        acc, main = self.acc, self.acc.is_main_process
        target = self.root / f"step-{st.step:08d}"
        tmp = self.root / f".step-{st.step:08d}.tmp"
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        torch.save(rng_state(), tmp / f"rng-{acc.process_index}.pt")
        if main:
            torch.save({**st.as_dict(), "world": acc.num_processes, **payload}, tmp / "state.pt")
        acc.wait_for_everyone()
        if main:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
            for old in self.list()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def load(self, path: Path) -> tuple[LoopState, dict[str, Any]]:
        """The loop state and the saved payload of checkpoint ``path``; this rank's RNG state is restored."""
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        if state["world"] != self.acc.num_processes:
            raise CotdistillError(
                f"{path}: checkpoint written by {state['world']} process(es), resuming with "
                f"{self.acc.num_processes}; resume with the same number of processes or pass --fresh"
            )
        set_rng_state(torch.load(path / f"rng-{self.acc.process_index}.pt", map_location="cpu", weights_only=False))
        return LoopState.from_dict(state), state
