"""User-facing errors: the CLI prints them as one line and exits with code 2, never a traceback."""

from __future__ import annotations


class CotdistillError(Exception):
    """Bad input or configuration that the user can fix; ``str()`` is the whole one-line message."""

    exit_code = 2


class InputError(CotdistillError):
    """A problem in an input file, located by file, line and field where known."""

    def __init__(self, file: object, message: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.detail = str(file), line, field, message
        where = self.file + (f":{line}" if line is not None else "")
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")


class ConfigError(CotdistillError):
    """An invalid configuration; lists every bad field at once."""
