"""Stage entry points shared by the CLI and ``cotdistill run``: each reads and writes run-directory files."""

from __future__ import annotations

from pathlib import Path

from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.rundir import RunDir
from cotdistill.sources import load_source


def write_questions(cfg: RunConfig, out_dir: str | Path | None = None) -> dict[str, int]:
    """Write the configured questions (all splits) atomically to ``questions.jsonl``; returns counts per split."""
    run = RunDir.at(out_dir or cfg.resolved_run_dir()).ensure()
    qc = cfg.questions
    counts = {"train": qc.train, "dev": qc.dev, "test": qc.test}
    made: dict[str, int] = {}

    def counted():
        for q in load_source(qc.source, counts, cfg.seed, qc.task, qc.fields, qc.options):
            made[q.split] = made.get(q.split, 0) + 1
            yield q

    atomic_write_jsonl(run.questions, counted())
    return made
