"""User-facing errors and the exit codes they map to; the CLI prints each as one line, never a traceback.

Exit codes (README, "Exit codes"): 0 success; 1 an internal error (one line plus the path of a log holding the
traceback); 2 a user error (bad input, bad config, bad command line); 3 a stage that could not do its work at all
(every request failed, a server that cannot be reached, refused the key or does not know the model); 4 ``run`` /
``demo`` / ``bench`` stopped at a stage that finished only in part (re-run to retry); 130 interrupted.
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_FAILED = 3
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130


class CotdistillError(Exception):
    """Bad input or configuration that the user can fix; ``str()`` is the whole one-line message."""

    exit_code = EXIT_USER


class InputError(CotdistillError):
    """A problem in an input file, located by file, line and field where known."""

    def __init__(self, file: object, message: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.detail = str(file), line, field, message
        where = self.file + (f":{line}" if line is not None else "")
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")


class ConfigError(CotdistillError):
    """An invalid configuration; lists every bad field at once."""


class StageFailed(CotdistillError):
    """A stage that could do none of its work (every request failed, the server is unreachable, the key or the
    model is refused): retrying as is will not help, so the command exits 3 naming the cause."""

    exit_code = EXIT_FAILED
    partial = False  # some of the stage's work was done (the rest failed for a reason no retry fixes)


class StageIncomplete(CotdistillError):
    """A stage finished only in part (some requests failed; a re-run retries them): ``run`` stops there, exit 4."""

    exit_code = EXIT_INCOMPLETE
