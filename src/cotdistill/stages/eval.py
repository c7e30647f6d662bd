"""The ``eval`` stage: each trained student answers the eval split zero-shot with greedy decoding; accuracy and
ensembles.

Per student (``RUN/students/<name>/``, or its ``best/`` checkpoint when present; a peft adapter directory loads
through ``peft.AutoPeftModelForCausalLM``) the questions are answered by
:func:`~cotdistill.evaluation.answering.answer_questions`, the dev check's own code: the prompt rendered as in
training, batched greedy decoding, the answer extracted strictly from the generated text only.

Outputs (atomic): ``RUN/eval/outputs.jsonl`` (one record per (student, question)), ``RUN/eval/ensembles.jsonl``
(one record per question with each ensemble's pick, when there are two or more students) and
``RUN/eval/metrics.json`` (:func:`~cotdistill.evaluation.metrics.compute_metrics`).
"""

from __future__ import annotations

import json
from typing import Any

import torch

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError
from cotdistill.evaluation.answering import Answered, answer_questions
from cotdistill.evaluation.metrics import compute_metrics
from cotdistill.io import atomic_write_jsonl, atomic_write_text
from cotdistill.progress import console, stage_progress
from cotdistill.records import SCHEMA_VERSION, Question, read_questions
from cotdistill.rundir import RunDir
from cotdistill.students.store import is_model_dir, load_student, trained_dir


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU (nothing depends on CUDA)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def eval_questions(run: RunDir, split: str) -> list[Question]:
    """The run's questions of ``split``, in file order; a clear error when there are none."""
    if not run.questions.exists():
        raise CotdistillError(f"{run.questions}: no questions in this run (run `cotdistill questions` or import)")
    qs = [q for q in read_questions(run.questions) if q.split == split]
    if not qs:
        raise CotdistillError(f"{run.questions}: no questions in split '{split}' (set eval.split)")
    return qs


def student_names(run: RunDir, cfg: RunConfig) -> list[str]:
    """The configured students in config order; with none configured, every student directory in the run."""
    if cfg.students:
        return [s.name for s in cfg.students]
    if not run.students.is_dir():
        return []
    return sorted(p.name for p in run.students.iterdir() if is_model_dir(p) or is_model_dir(p / "best"))


def output_record(name: str, a: Answered) -> dict[str, Any]:
    """One line of ``outputs.jsonl``."""
    g, q = a.generation, a.question
    return {
        "schema_version": SCHEMA_VERSION, "student": name, "question_id": q.id, "task": q.task, "text": g.text,
        "answer": a.answer, "gold": q.gold, "correct": a.correct, "mean_logprob": round(g.mean_logprob, 6),
        "n_tokens": g.n_tokens, "hit_eos": g.hit_eos, "truncated": a.truncated,
    }  # fmt: skip


def _found_students(run: RunDir, cfg: RunConfig) -> list[tuple[str, Any]]:
    names = student_names(run, cfg)
    found = [(n, trained_dir(run.students, n)) for n in names]
    missing = [n for n, d in found if d is None]
    found = [(n, d) for n, d in found if d is not None]
    if not found:
        raise CotdistillError(
            f"{run.students}: no trained student found (looked for {', '.join(names) or 'any student directory'})"
        )
    if missing:
        console().print(f"[yellow]not found, skipped:[/] {', '.join(missing)}")
    return found


def evaluate_run(run: RunDir, cfg: RunConfig) -> dict[str, Any]:
    """Evaluate every student found in the run on ``cfg.eval.split``; write metrics, outputs, ensembles."""
    ec = cfg.eval
    questions = eval_questions(run, ec.split)
    found = _found_students(run, cfg)
    device = pick_device(ec.device)
    torch.manual_seed(cfg.seed)
    per_student: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, str] = {}
    for name, path in found:
        model, tok = load_student(path, device)
        with stage_progress(f"eval {name}", len(questions)) as bar:
            answered = answer_questions(model, tok, questions, ec.max_new_tokens, ec.batch_size, on_batch=bar.advance)
        per_student[name] = [output_record(name, a) for a in answered]
        sources[name] = str(path)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    metrics = compute_metrics(ec.split, per_student, questions, list(ec.ensemble), sources)
    ens_records = metrics.pop("_ensemble_records")
    run.eval.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(run.outputs, [r for recs in per_student.values() for r in recs])
    atomic_write_jsonl(run.ensembles, ens_records)
    atomic_write_text(run.metrics, json.dumps(metrics, indent=2) + "\n")
    return metrics
