"""The ``questions`` stage: the configured source's questions, every split, written atomically to
``RUN/questions.jsonl``."""

from __future__ import annotations

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import read_questions
from cotdistill.rundir import RunDir
from cotdistill.sources import load_source


def write_questions(run: RunDir, cfg: RunConfig) -> dict[str, int]:
    """Write ``cfg.questions`` (all splits) to ``RUN/questions.jsonl``; returns the count per split.

    ``questions.source: imported`` keeps the questions ``cotdistill import`` wrote (and counts them).
    """
    run.ensure()
    qc = cfg.questions
    if qc.source == "imported":
        if not run.questions.exists():
            raise CotdistillError(
                f"{run.questions}: not found; questions.source 'imported' uses what `cotdistill import` wrote there"
            )
        made: dict[str, int] = {}
        for q in read_questions(run.questions):
            made[q.split] = made.get(q.split, 0) + 1
        return made
    counts = {"train": qc.train, "dev": qc.dev, "test": qc.test}
    made = {}

    def counted():
        for q in load_source(qc.source, counts, cfg.seed, qc.task, qc.fields, qc.options):
            made[q.split] = made.get(q.split, 0) + 1
            yield q

    atomic_write_jsonl(run.questions, counted())
    return made
