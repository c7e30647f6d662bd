"""The ``train`` stage: the configured method on the run's kept paths (``training.loop.Trainer``)."""

from __future__ import annotations

from typing import Any

from cotdistill.config import RunConfig
from cotdistill.rundir import RunDir


def train(run: RunDir, cfg: RunConfig, resume: bool = True) -> dict[str, Any]:
    """Train ``cfg.train.method`` on ``run`` (resuming from its latest checkpoint); returns the run summary."""
    from cotdistill.training.loop import Trainer

    return Trainer(run, cfg, resume).fit()
