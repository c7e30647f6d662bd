"""The lab's default teacher roster, and a one-call way to give a run synthetic paths (tests, benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources

import yaml

from cotdistill.config import STYLES, RunConfig, TeacherConfig
from cotdistill.errors import CotdistillError
from cotdistill.rundir import RunDir


def default_teachers() -> list[TeacherConfig]:
    """The default roster shipped inside the package (``cotdistill/lab/default_teachers.yaml``)."""
    text = resources.files("cotdistill.lab").joinpath("default_teachers.yaml").read_text(encoding="utf-8")
    return [TeacherConfig.model_validate(t) for t in yaml.safe_load(text)["teachers"]]


def write_lab_paths(
    run_dir: str | os.PathLike,
    teachers: Sequence[TeacherConfig] | None = None,
    styles: Sequence[str] | None = None,
    seed: int = 0,
    samples: int = 1,
    splits: Sequence[str] = ("train",),
) -> dict[str, int]:
    """Replace ``RUN/paths.jsonl`` with every (question of ``splits``, teacher, style, sample) path of synthetic
    teachers (the default roster when ``teachers`` is None), written by the ``generate`` stage itself.

    ``answer`` is the task family's strict extraction; the injected faults go to ``metadata["faults"]``.
    Returns the number of paths per teacher.
    """
    from cotdistill.stages.generate import run_generate

    run = RunDir.at(run_dir)
    teachers = list(teachers) if teachers is not None else default_teachers()
    bad = [t.name for t in teachers if t.backend != "synthetic"]
    if bad:
        raise CotdistillError(f"write_lab_paths drives synthetic teachers only (not: {', '.join(bad)})")
    cfg = RunConfig(
        seed=seed,
        teachers=teachers,
        generate={"styles": list(styles) if styles is not None else list(STYLES), "samples": samples,
                  "splits": list(splits)},
    )  # fmt: skip
    run.paths.unlink(missing_ok=True)
    summary = run_generate(run, cfg)
    if summary.failed:
        raise CotdistillError(f"synthetic teachers failed on {summary.failed} request(s) (are these lab questions?)")
    return {name: t.completed for name, t in summary.teachers.items()}
