"""The ``train`` stage: the configured method on the run's kept paths (``training.loop.Trainer``)."""

from __future__ import annotations

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
