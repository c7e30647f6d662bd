"""A small lab run for QR-Distill end-to-end tests and the epoch benchmark: lab questions, synthetic paths in
several styles from two teachers, ``filtered.jsonl`` from the lab judge plus the answer check, a two-student config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cotdistill.io import atomic_write_jsonl, atomic_write_text
from cotdistill.lab import generate_questions, write_lab_paths
from cotdistill.lab.judge import judge_lab_path
from cotdistill.lab.runner import default_teachers
from cotdistill.records import ReasoningPath as PathRec
from cotdistill.records import read_jsonl, read_questions
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family

STYLES = ["vanilla", "cot", "program", "backward"]


def make_lab_run(
    root: Path,
    n_train: int = 16,
    n_dev: int = 4,
    tasks: tuple[str, ...] = ("arith", "compare"),
    teachers: tuple[str, ...] = ("careful", "sloppy"),
    styles: list[str] | None = None,
    seed: int = 0,
) -> RunDir:
    """Questions, paths and ``filtered.jsonl`` (kept = right answer and judged valid) in ``root``."""
    run = RunDir.at(root).ensure()
    qs = list(generate_questions(list(tasks), {"train": n_train, "dev": n_dev, "test": 0}, seed=seed))
    atomic_write_jsonl(run.questions, qs)
    roster = [t for t in default_teachers() if t.name in teachers]
    write_lab_paths(root, teachers=roster, styles=styles or STYLES, seed=seed, splits=("train", "dev"))
    questions = {q.id: q for q in read_questions(run.questions)}
    out = []
    for p in read_jsonl(run.paths, PathRec):
        q = questions[p.question_id]
        answer_ok = get_family(q.task).is_correct(p.text, q)
        valid, reason = judge_lab_path(q, p.text)
        kept = answer_ok and valid
        p.checks = {
            **p.checks,
            "answer_ok": answer_ok,
            "judge": "VALID" if valid else "INVALID",
            "judge_reason": reason,
            "kept": kept,
            "reject_reason": None if kept else ("wrong_answer" if not answer_ok else "judge"),
        }
        out.append(p)
    atomic_write_jsonl(run.filtered, out)
    return run


def two_student_config(
    run: RunDir,
    epochs: int = 3,
    batch_size: int = 16,
    options: dict[str, Any] | None = None,
    d_model: int = 64,
    students: list[dict[str, Any]] | None = None,
    **train: Any,
) -> Path:
    """A config with a tiny-gpt2 and a tiny-llama student (different vocabularies, so different tokenizers)."""
    students = students or [
        {"name": "gpt2", "preset": "tiny-gpt2", "size": {"n_layer": 1, "d_model": d_model, "vocab": 320}, "lr": 3e-3},
        {
            "name": "llama",
            "preset": "tiny-llama",
            "size": {"n_layer": 1, "d_model": d_model, "vocab": 400},
            "lr": 3e-3,
        },
    ]
    cfg = {
        "name": "qr-test",
        "seed": 0,
        "students": students,
        "prompt": "bare",
        "train": {
            "method": "qr-distill",
            "epochs": epochs,
            "batch_size": batch_size,
            "max_length": 384,
            "bf16": False,
            "trackers": [],
            "options": options or {},
            **train,
        },
    }
    path = run.root / "qr.yaml"
    atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))
    return path
