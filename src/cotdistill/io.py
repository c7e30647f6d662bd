"""File I/O of a run: atomic replace for whole files, append-only JSONL writers that survive a kill, and the
tolerant JSONL reader for logs and caches (records that must validate go through ``records.read_jsonl``)."""

from __future__ import annotations

import errno
import glob
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from cotdistill.errors import CotdistillError, InputError

# errors that mean "the disk will not take this write": out of space, over a size limit or quota, read-only, denied
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class DiskError(CotdistillError):
    """A write the disk refused (full, read-only, no permission): one line naming the file; earlier work is kept."""


def disk_error(err: OSError, path: str | os.PathLike | None = None) -> DiskError:
    """A one-line :class:`DiskError` for ``err`` naming the file (the error's own, else ``path``)."""
    where = err.filename or path
    why = os.strerror(err.errno) if err.errno else str(err)
    what = f"cannot write {where}" if where else "a write failed"
    return DiskError(f"{what}: {why}; files already complete in the run directory are kept")


def _is_disk_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_ERRNOS


@contextmanager
def _atomic_replace(path: Path, mode: str) -> Iterator[IO[Any]]:
    """A temp file beside ``path`` opened in ``mode``; fsynced and renamed over ``path`` when the block succeeds,
    removed when it fails (a disk that refuses the write is a one-line :class:`DiskError`)."""
    fd, tmp = _mkstemp_beside(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if _is_disk_error(e):
            raise disk_error(e, path) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file (fsynced) and rename, so readers never see a half-written file."""
    with _atomic_replace(Path(path), "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    """The process umask (reading it means setting it: put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp_beside(path: Path) -> tuple[int, str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a kill mid-write (one writer:
            stale.unlink(missing_ok=True)  # the run directory's lock)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a replaced file gets what open() would give it
        return fd, tmp
    except OSError as e:
        if _is_disk_error(e):
            raise disk_error(e, path) from None
        raise


def _dump(record: BaseModel | dict[str, Any]) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json()
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Stream ``records`` into a temp file and rename it over ``path``; returns the number written."""
    n = 0
    with _atomic_replace(Path(path), "w") as f:
        for rec in records:
            f.write(_dump(rec) + "\n")
            n += 1
    return n


def iter_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, byte offset, object) for every non-blank line of a JSONL file, strictly: a line that is not
    UTF-8, not JSON or not an object raises :class:`InputError` naming the file and the line."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a JSONL file")
    pos = 0
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            start, pos = pos, pos + len(raw)
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a BOM (Excel, Notepad) is no data
            except UnicodeDecodeError as e:
                raise InputError(p, f"not valid UTF-8 (byte {e.start})", line=lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(p, f"malformed JSON: {e.msg} at column {e.colno}", line=lineno) from None
            if not isinstance(obj, dict):
                raise InputError(p, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
            yield lineno, start, obj


class JsonlAppender:
    """Append-only JSONL writer for resumable stages: each record is one complete line, flushed.

    On open it drops a torn last line (left by a kill mid-write), so the file always parses.
    """

    def __init__(self, path: str | os.PathLike, fsync_every: int = 64):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_torn_tail(self.path)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            if _is_disk_error(e):
                raise disk_error(e, self.path) from None
            raise
        self._since_sync = 0
        self._fsync_every = fsync_every

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        line = _dump(record) + "\n"
        try:
            self._f.write(line)
            self._f.flush()
            self._since_sync += 1
            if self._since_sync >= self._fsync_every:
                os.fsync(self._f.fileno())
                self._since_sync = 0
        except OSError as e:
            self._abandon_torn_line()
            if _is_disk_error(e):
                raise disk_error(e, self.path) from None
            raise

    def flush(self) -> None:
        """Push buffered lines to the file (every ``write`` already does; for callers that count lines)."""
        self._f.flush()

    def _abandon_torn_line(self) -> None:
        """After a failed write: drop the buffered rest and cut the file back to its last complete line."""
        try:
            self._f.close()
        except OSError:
            pass
        try:
            repair_torn_tail(self.path)
        except OSError:
            pass  # the next open repairs it

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.flush()
                os.fsync(self._f.fileno())
            except OSError as e:
                self._abandon_torn_line()
                if _is_disk_error(e):
                    raise disk_error(e, self.path) from None
                raise
            self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_torn_tail(path: Path) -> None:
    """Make a JSONL file end with a complete line: a kill mid-append leaves at most one partial last line.

    Only a last line with no newline is looked at: when it parses as a JSON object it is a complete record whose
    newline was never written (or was stripped by an editor), so the newline is added; otherwise it is torn and cut
    off. Complete lines are never touched.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        start = _last_line_start(f, size)
        if start == size:
            return  # ends with a newline
        f.seek(start)
        tail = f.read(size - start)
        if _is_record(tail):
            f.seek(size)
            f.write(b"\n")
        else:
            f.truncate(start)


def _last_line_start(f: IO[bytes], size: int, chunk: int = 4096) -> int:
    """Offset just after the last newline of the open file ``f`` of ``size`` bytes (0 when it has none)."""
    pos = size
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        f.seek(pos)
        idx = f.read(step).rfind(b"\n")
        if idx >= 0:
            return pos + idx + 1
    return 0


def _is_record(raw: bytes) -> bool:
    """Whether ``raw`` (a line without its newline) is one whole JSON object."""
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def iter_objects(path: str | os.PathLike, skipped: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL log or cache, streamed; a line that does not parse as an object (a torn last
    line, say) is skipped and counted in ``skipped[0]`` when given. A missing file yields nothing."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # -sig: a BOM before the first record
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                yield obj
            elif skipped is not None:
                skipped[0] += 1


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``{"bytes", "blake2b"}`` of a file's content: what a later stage compares to tell that its input changed."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return {"bytes": n, "blake2b": h.hexdigest()}


def count_lines(path: str | os.PathLike) -> int:
    """Number of lines of ``path`` (0 when absent)."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def truncate_lines(path: str | os.PathLike, n: int) -> None:
    """Keep the first ``n`` lines of ``path`` (a resumed stage drops records written after its checkpoint)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb+") as f:
        pos = 0
        for _ in range(n):
            line = f.readline()
            if not line:
                break
            pos += len(line)
        f.truncate(pos)
