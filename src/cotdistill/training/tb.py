"""TensorBoard event files that agree with the logs after a resume.

A killed run leaves events for the steps between its last checkpoint and the kill; the resumed run logs those steps
again. A checkpoint therefore records the size of every event file under ``RUN/logs/tb`` (after flushing the
writer), and a resume truncates each file back to that size and removes files written after it, exactly as the
JSONL logs are trimmed; a fresh start removes them all. The resumed writer also gets ``purge_step`` (a
``SessionLog.START`` at the resume step), which TensorBoard's own loader honours. Only the main process writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PATTERN = "events.out.tfevents.*"


def event_sizes(acc: Any, root: Path) -> dict[str, int]:
    """Flush the TensorBoard writer (when there is one) and return each event file's size, by relative path."""
    for tracker in getattr(acc, "trackers", []) or []:
        writer = getattr(tracker, "writer", None)
        if writer is not None and hasattr(writer, "flush"):
            writer.flush()
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob(PATTERN)) if p.is_file()}


def restore_events(root: Path, sizes: dict[str, int] | None) -> None:
    """Cut the event files under ``root`` back to ``sizes`` (a checkpoint's record); ``None`` or ``{}`` removes
    them all (a fresh start). Files the record does not know were written after it and are removed."""
    if not root.is_dir():
        return
    for p in sorted(root.rglob(PATTERN)):
        keep = (sizes or {}).get(str(p.relative_to(root)))
        if keep is None:
            p.unlink(missing_ok=True)
        elif p.stat().st_size > keep:
            with open(p, "rb+") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
