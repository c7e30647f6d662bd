"""Checkpoints in ``RUN/checkpoints/step-<N>/``: trainable weights, optimizer, scheduler, method state and
modules, the epoch's batch order and position, each log's length, every process's RNG state, and a fingerprint of
what the run trains from.

A checkpoint directory appears whole (written to a temp directory, then renamed); only the newest
``train.keep_checkpoints`` are kept. The fingerprint (:func:`train_fingerprint`: the kept training examples, the
students and their tokenizers, the method and its options, the schedule-defining ``train`` fields and the seed)
decides whether a later ``train`` may resume from it: :func:`fingerprint_changes` says what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError
from cotdistill.training.rng import rng_state, set_rng_state

# the train fields that define the schedule (a change makes a checkpoint's position and learning rate meaningless)
SCHEDULE_FIELDS = ("epochs", "batch_size", "grad_accum", "max_length", "warmup_ratio", "weight_decay", "max_grad_norm",
                   "length_grouping")  # fmt: skip


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_fingerprint(cfg: RunConfig, examples: Sequence[Any], tokenizers: Sequence[Any]) -> dict[str, Any]:
    """What a run trains from: the kept examples (question, path, prompt, target), the students' config and
    tokenizers, the method with its options (defaults applied), the schedule and the seed."""
    from cotdistill.training.methods.registry import method_spec

    h = hashlib.sha256()
    for ex in examples:
        for part in (ex.question.id, ex.path.id if ex.path is not None else "", ex.kind, ex.prompt, ex.target):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
    tc = cfg.train
    options = method_spec(tc.method).options.model_validate(tc.options).model_dump(mode="json")
    return {
        "examples": len(examples), "data": h.hexdigest()[:16],
        "students": _digest([s.model_dump(mode="json") for s in cfg.students]),
        "tokenizers": _digest([sorted(t.get_vocab().items()) for t in tokenizers]),
        "method": tc.method, "options": options, "schedule": {k: getattr(tc, k) for k in SCHEDULE_FIELDS},
        "seed": cfg.seed,
    }  # fmt: skip


def fingerprint_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's fingerprint and this run's, in words (empty: the same run)."""
    if not old:
        return ["it records no fingerprint (written by an older cotdistill)"]
    out = []
    if old.get("data") != new["data"]:
        out.append(f"the training examples ({old.get('examples')} then, {new['examples']} now)")
    if old.get("students") != new["students"]:
        out.append("the students")
    elif old.get("tokenizers") != new["tokenizers"]:
        out.append("the students' tokenizers")
    if old.get("method") != new["method"]:
        out.append(f"train.method ({old.get('method')} then, {new['method']} now)")
    elif old.get("options") != new["options"]:
        out.append("train.options")
    for k, v in new["schedule"].items():
        if (old.get("schedule") or {}).get(k) != v:
            out.append(f"train.{k} ({(old.get('schedule') or {}).get(k)} then, {v} now)")
    if old.get("seed") != new["seed"]:
        out.append(f"seed ({old.get('seed')} then, {new['seed']} now)")
    return out


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

    def read(self, path: Path) -> dict[str, Any]:
        """The saved state of checkpoint ``path`` (loop state, payload, fingerprint); nothing is restored yet."""
        return torch.load(path / "state.pt", map_location="cpu", weights_only=False)

    def resume(self, path: Path, state: dict[str, Any]) -> LoopState:
        """The loop state of checkpoint ``path`` (``state`` from :meth:`read`); this rank's RNG state is restored."""
        if state["world"] != self.acc.num_processes:
            raise CotdistillError(
                f"{path}: checkpoint written by {state['world']} process(es), resuming with "
                f"{self.acc.num_processes}; resume with the same number of processes or pass --fresh"
            )
        set_rng_state(torch.load(path / f"rng-{self.acc.process_index}.pt", map_location="cpu", weights_only=False))
        return LoopState.from_dict(state)

    def load(self, path: Path) -> tuple[LoopState, dict[str, Any]]:
        """The loop state and the saved payload of checkpoint ``path``; this rank's RNG state is restored."""
        state = self.read(path)
        return self.resume(path, state), state
