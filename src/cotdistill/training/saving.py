"""Saving trained students from the loop: a plain HF directory per student, written by the main process; under
FSDP the sharded student is gathered into an unsharded copy first (``training.sharding``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cotdistill.config import RunConfig
from cotdistill.training import sharding
from cotdistill.training.rng import rng_state, set_rng_state
from cotdistill.training.student import Student


class StudentSaver:
    """Writes ``students/<name>/`` (and ``best/``) for one run; called on every process, only the main one writes."""

    def __init__(self, cfg: RunConfig, main: bool, fsdp: bool, texts: list[str] | None, tokenizers_cache: Path):
        self.cfg, self.main, self.fsdp = cfg, main, fsdp
        self.texts, self.tokenizers_cache = texts, tokenizers_cache
        self.twins: dict[str, Any] = {}  # FSDP: whole copies of the students on the main process's CPU

    def save(self, s: Student, out: Path) -> None:
        """Save student ``s`` to ``out`` (merged LoRA unless its config says otherwise; a 4-bit base keeps the
        adapter). Under FSDP every process takes part in gathering it."""
        from cotdistill.students import save_student

        model = self._whole(s) if self.fsdp else s.model
        if not self.main:
            return
        sc = next(c for c in self.cfg.students if c.name == s.name)
        merge = bool((sc.lora or {}).get("merge", True)) and sc.quantization is None
        save_student(model, s.tokenizer, out, merge=merge)

    def _whole(self, s: Student) -> Any:
        """An unsharded copy of ``s`` holding its current weights on the main process (None elsewhere): built once
        from the student's config, then refreshed from the gathered weights."""
        from cotdistill.students.build import initial_student

        weights = sharding.full_model_state(s.model)  # every process takes part
        if not self.main:
            return None
        if s.name not in self.twins:
            i, sc = next((i, c) for i, c in enumerate(self.cfg.students) if c.name == s.name)
            rng = rng_state()  # building reseeds; training's random streams go on as if it had not happened
            self.twins[s.name] = initial_student(sc, i, self.cfg.seed, self.texts, self.tokenizers_cache).model
            set_rng_state(rng)
        twin = self.twins[s.name]
        twin.load_state_dict(weights)
        return twin
