"""One writer per run directory: an exclusive ``flock`` on ``RUN/.lock`` held for the life of a stage command.

A second process on the same run directory refuses at once with a clear message (who holds it, doing what)
instead of interleaving writes. The kernel drops the lock when the holder dies (even by SIGKILL), so a stale
``.lock`` file never blocks anyone. Under ``torchrun`` / ``accelerate launch`` only rank 0 takes it: the other
ranks are the same command.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import sys
from pathlib import Path

from cotdistill.errors import CotdistillError

LOCK_NAME = ".lock"

_held: dict[Path, int] = {}  # resolved run dir -> open fd holding the lock (re-entrant within one process)


class RunDirBusyError(CotdistillError):
    """Another live process holds the run directory's lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return f"pid {info.get('pid', '?')} (command {info.get('command', '?')})"
    except (OSError, ValueError):
        return "another process"


def launched_rank_zero() -> bool:
    """Whether this process is rank 0 of a ``torchrun`` / ``accelerate launch`` run (read from ``RANK`` before any
    process group exists); True for a process started on its own."""
    return os.environ.get("RANK", "0") in ("", "0")


def acquire_run_lock(root: str | os.PathLike, command: str) -> Path | None:
    """Take ``root/.lock`` for this process (no-op when already held here or on a non-zero rank).

    Raises :class:`RunDirBusyError` when another process holds it. Returns the lock path, or None when skipped.
    """
    if not launched_rank_zero():
        return None
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    key = root.resolve()
    if key in _held:
        return key / LOCK_NAME
    path = key / LOCK_NAME
    for _ in range(20):  # retry when the file we locked was unlinked by a releasing holder meanwhile
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirBusyError(
                f"run directory {root} is in use by {_holder(path)}; wait for it to finish or use another run directory"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        info = {"pid": os.getpid(), "command": command, "argv": [os.path.basename(a) for a in sys.argv[:2]]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _held[key] = fd
        return path
    raise RunDirBusyError(f"run directory {root}: could not take its lock (it keeps changing)")


def held_run_dirs() -> list[Path]:
    """The run directories whose lock this process holds (where an internal error's log goes)."""
    return list(_held)


def release_run_lock(root: str | os.PathLike) -> None:
    """Give the lock back (unlink first, then close: a waiter that opened the old file re-checks the inode)."""
    key = Path(root).resolve()
    fd = _held.pop(key, None)
    if fd is None:
        return
    try:
        (key / LOCK_NAME).unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)


def _release_all() -> None:
    for key in list(_held):
        release_run_lock(key)


atexit.register(_release_all)
