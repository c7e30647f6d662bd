"""The one progress-bar helper and the console policy: rich bars on an interactive terminal; on a redirected stream
a plain progress line at most once a minute (``COTDISTILL_PROGRESS_SECONDS``), so a log holds a few lines per long
stage and no control characters; and the third-party bars (transformers' weight loading, datasets' shard writing,
sentence-transformers) silenced."""

from __future__ import annotations

import logging
import os
import time
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


class PlainBar(Bar):
    """Progress for a file or a pipe: one line ``label: done/total (pct) info, elapsed, ~left`` when at least
    ``interval`` seconds passed since the last one (no line for a stage that ends sooner)."""

    def __init__(self, label: str, total: int, completed: int, out: Console, interval: float):
        super().__init__(None, None)
        self.label, self.total, self.done, self.out, self.interval = label, total, completed, out, interval
        self._start_done, self._t0 = completed, time.monotonic()
        self._last = self._t0

    def update(self, completed: int | None = None, info: str = "", advance: int = 0) -> None:
        self.done = (completed if completed is not None else self.done) + advance
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        elapsed, moved = now - self._t0, self.done - self._start_done
        left = f", ~{clock((self.total - self.done) * elapsed / moved)} left" if moved > 0 else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        info = f" {info}" if info else ""
        self.out.print(f"{self.label}: {self.done}/{self.total}{pct}{info}, {clock(elapsed)} elapsed{left}",
                       markup=False, highlight=False, soft_wrap=True)  # fmt: skip


def clock(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_interval() -> float:
    """Seconds between plain progress lines on a redirected stream (``COTDISTILL_PROGRESS_SECONDS``, default 60)."""
    raw = os.environ.get("COTDISTILL_PROGRESS_SECONDS", "60")
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return 60.0


@contextmanager
def stage_progress(
    label: str, total: int, enabled: bool = True, completed: int = 0, on: Console | None = None
) -> Iterator[Bar]:
    """A bar ``label  ━━━━  done/total  info  elapsed  remaining`` for one long loop, on ``on`` (default: stderr);
    where it cannot redraw (a file or a pipe), a plain line now and then (:class:`PlainBar`)."""
    out = on or _console
    if not enabled:
        yield Bar(None, None)
        return
    if not out.is_terminal:
        yield PlainBar(label, total, completed, out, progress_interval())
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
