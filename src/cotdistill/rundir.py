"""The run directory layout: one place that names every file a stage reads or writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """Paths inside ``runs/<name>/`` (see DESIGN.md): every stage reads and writes through these names."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> RunDir:
        return cls(Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def questions(self) -> Path:
        return self.root / "questions.jsonl"

    @property
    def paths(self) -> Path:
        return self.root / "paths.jsonl"

    @property
    def filtered(self) -> Path:
        return self.root / "filtered.jsonl"

    @property
    def students(self) -> Path:
        return self.root / "students"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def ensure(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
