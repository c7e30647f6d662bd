"""The built-in reasoning lab as a question source: ``lab:arith,date,compare`` (registered by ``lab.register``)."""

from __future__ import annotations

from collections.abc import Iterator

from cotdistill.errors import CotdistillError
from cotdistill.records import Question
from cotdistill.sources import SourceRequest


def lab_source(req: SourceRequest) -> Iterator[Question]:
    """Lab questions of the named tasks (all three when none is named), knobs from ``questions.options``."""
    rest, counts, seed, task, options = req.rest, req.counts, req.seed, req.task, req.options
    from cotdistill.lab import TASKS, generate_questions

    names = [n.strip() for n in rest.split(",") if n.strip()] or list(TASKS)
    if task is not None:
        raise CotdistillError("questions.task cannot override the task family of lab questions (leave it unset)")
    return generate_questions(names, counts, seed, options)
