"""Run synthetic teachers over a run's questions and write ``RUN/paths.jsonl`` (until ``cotdistill generate``
drives the synthetic backend itself, this is how the lab's tests and benchmark make paths)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources

import yaml

from cotdistill.config import STYLES, TeacherConfig
from cotdistill.errors import CotdistillError
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import Path, Question, path_id, read_questions
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family
from cotdistill.teachers.base import GenRequest


def default_teachers() -> list[TeacherConfig]:
    """The default roster shipped inside the package (``cotdistill/lab/default_teachers.yaml``)."""
    text = resources.files("cotdistill.lab").joinpath("default_teachers.yaml").read_text(encoding="utf-8")
    return [TeacherConfig.model_validate(t) for t in yaml.safe_load(text)["teachers"]]


def lab_requests(
    questions: Iterable[Question], teacher: str, styles: Sequence[str], samples: int = 1, seed: int = 0
) -> Iterator[GenRequest]:
    """One request per (question, style, sample) for ``teacher``: the core prompt under a style heading."""
    for q in questions:
        core = get_family(q.task).core_prompt(q)
        for style in styles:
            for k in range(samples):
                yield GenRequest(
                    key=path_id(q.id, teacher, style, k),
                    question=q,
                    style=style,
                    sample=k,
                    messages=[{"role": "user", "content": f"[style: {style}]\n{core}"}],
                    seed=seed,
                )


def write_lab_paths(
    run_dir: str | os.PathLike,
    teachers: Sequence[TeacherConfig] | None = None,
    styles: Sequence[str] | None = None,
    seed: int = 0,
    samples: int = 1,
    splits: Sequence[str] = ("train",),
) -> dict[str, int]:
    """Write every (question of ``splits``, teacher, style, sample) path to ``RUN/paths.jsonl`` atomically.

    ``answer`` is the task family's strict extraction; the injected faults go to ``metadata["faults"]``.
    Returns the number of paths per teacher.
    """
    from cotdistill.lab.synthetic import SyntheticBackend

    run = RunDir.at(run_dir)
    teachers = list(teachers) if teachers is not None else default_teachers()
    styles = list(styles) if styles is not None else list(STYLES)
    bad = [t.name for t in teachers if t.backend != "synthetic"]
    if bad:
        raise CotdistillError(f"write_lab_paths drives synthetic teachers only (not: {', '.join(bad)})")
    questions = [q for q in read_questions(run.questions) if q.split in splits]
    counts: dict[str, int] = {}

    def records() -> Iterator[Path]:
        from rich.progress import Progress

        total = len(questions) * len(styles) * samples * len(teachers)
        with Progress(transient=True, disable=total < 5000) as bar:
            task = bar.add_task("synthetic paths", total=total)
            for t in teachers:
                backend = SyntheticBackend(t, seed)
                for req in lab_requests(questions, t.name, styles, samples, seed):
                    c = backend.complete(req)
                    if c.text is None:
                        raise CotdistillError(c.error or "synthetic teacher failed")
                    q = req.question
                    counts[t.name] = counts.get(t.name, 0) + 1
                    bar.advance(task)
                    yield Path(
                        id=req.key,
                        question_id=q.id,
                        teacher=t.name,
                        style=req.style,
                        sample=req.sample,
                        prompt=req.prompt,
                        text=c.text,
                        answer=get_family(q.task).extract(c.text, q),
                        metadata={"usage": c.usage, **c.metadata},
                    )

    atomic_write_jsonl(run.paths, records())
    return counts
