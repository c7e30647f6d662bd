"""The training loop's JSONL logs (main process only): append-only, with a manifest so resume can trim them all
back to the restored checkpoint (no record is duplicated or lost across a kill)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cotdistill.io import JsonlAppender, atomic_write_text, count_lines, truncate_lines


class Logs:
    """Named logs ``RUN/logs/<name>.jsonl``; ``counts()`` goes into a checkpoint and ``restore()`` trims to it."""

    def __init__(self, logs_dir: Path, active: bool):
        self.dir, self.active = logs_dir, active
        self.manifest = logs_dir / ".train_logs.json"
        self._open: dict[str, JsonlAppender] = {}
        self.names: list[str] = json.loads(self.manifest.read_text()) if self.manifest.exists() else []

    def write(self, name: str, records: list[dict[str, Any]]) -> None:
        if not self.active or not records:
            return
        if name not in self._open:
            if name not in self.names:
                self.names.append(name)
                atomic_write_text(self.manifest, json.dumps(self.names))
            self._open[name] = JsonlAppender(self.dir / f"{name}.jsonl")
        ap = self._open[name]
        for r in records:
            ap.write(r)

    def counts(self) -> dict[str, int]:
        for ap in self._open.values():
            ap.flush()
        return {n: count_lines(self.dir / f"{n}.jsonl") for n in self.names}

    def restore(self, counts: dict[str, int] | None) -> None:
        """Trim every log to its checkpoint length (``None``: a fresh run, empty them all)."""
        self.close()
        if not self.active:
            return
        for n in self.names:
            truncate_lines(self.dir / f"{n}.jsonl", (counts or {}).get(n, 0))

    def close(self) -> None:
        for ap in self._open.values():
            ap.close()
        self._open = {}
