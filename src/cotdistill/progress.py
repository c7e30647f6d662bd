"""The one progress-bar helper and the console policy: rich bars on an interactive terminal, nothing on a
redirected stream (a log then holds one line per stage and no control characters), and the third-party bars
(transformers' weight loading, datasets' shard writing, sentence-transformers) silenced."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

_console = Console(stderr=True)


def console() -> Console:
    """The console progress and stage lines go to (stderr)."""
    return _console


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars redraw) rather than a file or a pipe."""
    return _console.is_terminal


def quiet_third_party_bars() -> None:
    """Silence the tqdm bars, warnings and info chatter of transformers, peft, datasets and huggingface_hub (their
    bars would flood a log; the stages draw their own)."""
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")  # bars drawn with plain tqdm (GGUF de-quantisation, shard writing)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|accelerate)\b.*")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # CPU kernel-hub notices on every import
    warnings.filterwarnings("ignore", category=UserWarning, module=r"peft\b.*")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class Bar:
    """A live progress bar (``update``/``advance``), or a silent one when disabled or not interactive."""

    def __init__(self, progress: Any, task: Any):
        self._p, self._task = progress, task

    def update(self, completed: int | None = None, info: str = "", advance: int = 0) -> None:
        if self._p is None:
            return
        kwargs: dict[str, Any] = {"info": info}
        if completed is not None:
            kwargs["completed"] = completed
        if advance:
            kwargs["advance"] = advance
        self._p.update(self._task, **kwargs)

    def advance(self, n: int = 1, info: str = "") -> None:
        self.update(advance=n, info=info)


@contextmanager
def stage_progress(
    label: str, total: int, enabled: bool = True, completed: int = 0, on: Console | None = None
) -> Iterator[Bar]:
    """A bar ``label  ━━━━  done/total  info  elapsed  remaining`` for one long loop, on ``on`` (default: stderr);
    silent where it cannot redraw (a file or a pipe)."""
    out = on or _console
    if not (enabled and out.is_terminal):
        yield Bar(None, None)
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn(f"[bold]{escape(label)}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=True,
    )
    with progress:
        task = progress.add_task(label, total=total, completed=completed, info="")
        yield Bar(progress, task)
