"""Shared by the COMPACT benchmarks: a lab run with three synthetic teachers, one corrupted on a share of questions.

The corrupted teacher writes every path of a seeded ``corrupt_share`` of the training questions with a wrong
answer (a miscalculated step carried to the end: the lab's ``wrong_answer`` fault at rate 1), and clean paths
elsewhere. The filter stage then runs with ``filter.enabled: false`` (every path kept, every check recorded, so
both methods train on the same data) and the graph consensus on. The three teachers share one fault-free
profile (different phrasings: the lab's text depends on the teacher's name), so corruption is their only
difference.
"""

from __future__ import annotations

import random
from pathlib import Path

from cotdistill.config import RunConfig, TeacherConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import read_paths, read_questions
from cotdistill.rundir import RunDir

CLEAN = {"verbosity": 0.2, "faults": {"wrong_answer": 0.0, "spurious": 0.0, "truncation": 0.0, "format_drift": 0.0}}


def corrupted_lab_run(
    root: str | Path,
    train: int = 300,
    test: int = 100,
    styles: tuple[str, ...] = ("vanilla", "cot"),
    corrupt_share: float = 0.3,
    seed: int = 0,
    tasks: str = "arith",
    consensus: bool = True,
    task_options: dict | None = None,
    dev: int = 0,
) -> tuple[RunDir, set[str]]:
    """Questions, paths (teachers ``clean_a``, ``clean_b``, ``corrupt``) and filtered.jsonl under ``root``.

    Returns the run and the ids of the questions on which ``corrupt`` is wrong.
    """
    from cotdistill.lab import write_lab_paths
    from cotdistill.stages.filter import filter_run
    from cotdistill.stages.questions import write_questions

    run = RunDir.at(root).ensure()
    cfg = RunConfig.model_validate(
        {
            "seed": seed,
            "questions": {
                "source": f"lab:{tasks}",
                "train": train,
                "dev": dev,
                "test": test,
                "options": {tasks: task_options} if task_options else {},
            },
            "filter": {"enabled": False, "judge": {"kind": "none"}, "consensus": {"enabled": consensus}},
        }
    )
    write_questions(run, cfg)
    teachers = [
        TeacherConfig(name="clean_a", backend="synthetic", profile=CLEAN),
        TeacherConfig(name="clean_b", backend="synthetic", profile=CLEAN),
        TeacherConfig(name="corrupt", backend="synthetic", profile=CLEAN),
        TeacherConfig(
            name="corrupt_bad",
            backend="synthetic",
            profile={**CLEAN, "faults": {**CLEAN["faults"], "wrong_answer": 1.0}},
        ),
    ]
    write_lab_paths(run.root, teachers=teachers, styles=list(styles), seed=seed)
    qids = sorted(q.id for q in read_questions(run.questions) if q.split == "train")
    rng = random.Random(seed)
    bad = set(rng.sample(qids, round(corrupt_share * len(qids))))
    bad_paths = {}
    for p in read_paths(run.paths):
        if p.teacher == "corrupt_bad":
            bad_paths[(p.question_id, p.style, p.sample)] = p
    out = []
    for p in read_paths(run.paths):
        if p.teacher == "corrupt_bad":
            continue
        if p.teacher == "corrupt" and p.question_id in bad:
            b = bad_paths[(p.question_id, p.style, p.sample)]
            p = p.model_copy(update={"text": b.text, "answer": b.answer, "metadata": b.metadata})
        out.append(p)
    atomic_write_jsonl(run.paths, out)
    filter_run(run, cfg)
    return run, bad
