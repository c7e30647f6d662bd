"""The ``questions`` stage: the configured source's questions, every split, written atomically to
``RUN/questions.jsonl``."""

from __future__ import annotations

from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.rundir import RunDir
from cotdistill.sources import load_source


def write_questions(run: RunDir, cfg: RunConfig) -> dict[str, int]:
    """Write ``cfg.questions`` (all splits) to ``RUN/questions.jsonl``; returns the count per split."""
    run.ensure()
    qc = cfg.questions
    counts = {"train": qc.train, "dev": qc.dev, "test": qc.test}
    made: dict[str, int] = {}

    def counted():
        for q in load_source(qc.source, counts, cfg.seed, qc.task, qc.fields, qc.options):
            made[q.split] = made.get(q.split, 0) + 1
            yield q

    atomic_write_jsonl(run.questions, counted())
    return made
