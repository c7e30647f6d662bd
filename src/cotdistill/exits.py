"""How the command line ends: every error as one line on stderr with an exit code that says what happened.

User errors (:class:`~cotdistill.errors.CotdistillError`, a disk that refuses a write, typer/click usage errors such
as an unknown command or option) print ``error: ...`` and exit with their code (2, or 3 / 4 for stages that failed
or finished in part; see :mod:`cotdistill.errors`). Anything unexpected is a bug: one line naming it and a log file
holding the traceback (``RUN/logs/error-<time>.log`` when a run directory is held, else the temp directory), exit 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

from cotdistill.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USER, CotdistillError

console = Console(stderr=True)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr as one line (a message quoting multi-line input still prints as one line)."""
    one_line = " ".join(str(message).splitlines())
    # escape: a message quoting "[B]" or a file called data[1].json must print as it is
    console.print(f"[red]error:[/] {escape(one_line)}", highlight=False, soft_wrap=True)


def _usage_error(e: Any) -> int:
    """A typer/click usage error: its own message as one line (with where to find help), exit 2."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":  # bare ``cotdistill``: the help is the answer
        e.show()
        return EXIT_USER
    hint = ""
    if ctx is not None and getattr(ctx, "command_path", None):
        hint = f" (see '{ctx.command_path} --help')"
    print_error(f"{e.format_message()}{hint}")
    return int(getattr(e, "exit_code", EXIT_USER) or EXIT_USER)


def internal_error_log(exc: BaseException) -> Path | None:
    """Write the traceback of ``exc`` to ``RUN/logs/error-<time>.log`` (a run directory this process holds) or to
    the temp directory; returns the file, or None when neither could be written."""
    from cotdistill.lock import held_run_dirs

    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = "".join(traceback.format_exception(exc))
    candidates = [root / "logs" / f"error-{stamp}-{os.getpid()}.log" for root in held_run_dirs()]
    candidates.append(Path(tempfile.gettempdir()) / f"cotdistill-error-{stamp}-{os.getpid()}.log")
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"cotdistill {' '.join(sys.argv[1:])}\n{text}", encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def _internal(e: BaseException) -> int:
    log = internal_error_log(e)
    what = " ".join(str(e).split())[:300]
    where = f"the traceback is in {log}" if log else "the traceback could not be written to a log"
    print_error(f"internal error ({type(e).__name__}: {what}); {where}; please report it")
    return EXIT_INTERNAL


def _returned(rc: object) -> int:
    """The code typer returns in non-standalone mode (Ctrl-C becomes Exit(130), returned, not raised)."""
    if isinstance(rc, int) and rc:
        if rc == EXIT_INTERRUPTED:
            console.print("[yellow]interrupted[/]")
        return rc
    return 0


def run_app(app: Any) -> NoReturn:
    """Run the typer ``app`` and exit with a code that means something; never a traceback on stderr."""
    import typer

    from cotdistill.faults import maybe_kill
    from cotdistill.io import DISK_ERRNOS, disk_error

    try:
        maybe_kill("cli:start")
        code = _returned(app(prog_name="cotdistill", standalone_mode=False))
    except CotdistillError as e:
        print_error(str(e))
        code = e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        console.print("[yellow]interrupted[/]")
        code = EXIT_INTERRUPTED
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
    except typer.TyperException as e:  # click usage errors (typer vendors click as typer._click)
        code = _usage_error(e)
    except OSError as e:  # a disk that refuses a write (full, read-only, denied) anywhere: one line, exit 2
        if e.errno in DISK_ERRNOS:
            print_error(str(disk_error(e)))
            code = EXIT_USER
        else:
            code = _internal(e)
    except Exception as e:  # noqa: BLE001  (a bug: one line and a log with the traceback)
        code = _internal(e)
    sys.exit(code)
