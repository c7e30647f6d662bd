"""The ``train`` stage: the configured method on the run's kept paths (``training.loop.Trainer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cotdistill.config import RunConfig
from cotdistill.rundir import RunDir


def train(run: RunDir, cfg: RunConfig, resume: bool = True, warm_start: bool = False) -> dict[str, Any]:
    """Train ``cfg.train.method`` on ``run``; returns the run summary.

    It resumes from the latest checkpoint when that was made from the same training data, students, method and
    schedule, and starts fresh otherwise (saying what changed); ``warm_start`` takes the checkpoint's weights with a
    new schedule; ``resume=False`` ignores checkpoints.
    """
    from cotdistill.training.loop import Trainer

    return Trainer(run, cfg, resume, warm_start).fit()


def trained_line(summary: dict[str, Any], students: Path) -> str:
    """The console's one line after training: students, method, engine when distributed, steps, examples, speed."""
    n = summary.get("processes", 1)
    engine = f" on {n} processes ({summary.get('engine', 'ddp')})" if n > 1 else ""
    return (
        f"trained {', '.join(summary['students'])} with {summary['method']}{engine}: {summary['steps']} steps, "
        f"{summary['examples']} examples ({summary['dropped_overlong']} over max_length dropped), "
        f"{summary['tokens_per_s']:,.0f} tokens/s -> {students}"
    )
