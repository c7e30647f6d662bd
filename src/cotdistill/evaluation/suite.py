"""What one model is measured on in ``cotdistill eval``: the eval split, every probe, and (for drift) the pooled
hidden states of a fixed question set; with a cache, so a student's starting point is evaluated only once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cotdistill.evaluation.answering import Answered, answer_questions, student_prompt
from cotdistill.evaluation.drift import pooled_states
from cotdistill.io import atomic_write_bytes, atomic_write_text
from cotdistill.progress import stage_progress
from cotdistill.records import SCHEMA_VERSION, Question


@dataclass
class EvalSets:
    """The questions every model answers: the eval split, the probes, and the drift set."""

    split: str
    questions: list[Question]
    probes: dict[str, list[Question]] = field(default_factory=dict)
    drift: list[Question] = field(default_factory=list)

    def digest(self) -> str:
        """A hash of every question (ids, texts, golds) and its role, for cache keys."""
        h = hashlib.sha256()
        for role, qs in [("split", self.questions), *self.probes.items(), ("drift", self.drift)]:
            h.update(role.encode())
            for q in qs:
                h.update(f"\0{q.id}\0{q.question}\0{q.choices}\0{q.gold}".encode())
        return h.hexdigest()[:16]


@dataclass
class ModelEval:
    """One model's results: output records on the split and per probe, and its drift states."""

    outputs: list[dict[str, Any]]
    probes: dict[str, list[dict[str, Any]]]
    states: torch.Tensor | None = None


def output_record(name: str, a: Answered) -> dict[str, Any]:
    """One line of ``outputs.jsonl``."""
    g, q = a.generation, a.question
    return {
        "schema_version": SCHEMA_VERSION, "student": name, "question_id": q.id, "task": q.task, "text": g.text,
        "answer": a.answer, "gold": q.gold, "correct": a.correct, "mean_logprob": round(g.mean_logprob, 6),
        "n_tokens": g.n_tokens, "hit_eos": g.hit_eos, "truncated": a.truncated, "no_answer": a.answer is None,
        "calculator_calls": g.calculator_calls,
    }  # fmt: skip


def _answer(model: Any, tok: Any, qs: list[Question], label: str, ec: Any, policy: str, bf16: bool) -> list[Answered]:
    with stage_progress(label, len(qs)) as bar:
        tokens = [0]

        def tick(gens: list) -> None:
            tokens[0] += sum(g.n_tokens for g in gens)
            bar.advance(len(gens), f"{tokens[0]:,} tokens")

        return answer_questions(
            model, tok, qs, ec.max_new_tokens, ec.batch_size, policy, bf16=bf16, on_batch=tick, calculator=ec.calculator
        )


def evaluate_model(name: str, model: Any, tok: Any, sets: EvalSets, cfg: Any, bf16: bool, label: str) -> ModelEval:
    """``model`` answers the split and every probe; its pooled prompt states on the drift set when asked."""
    ec, policy = cfg.eval, cfg.prompt
    outputs = [output_record(name, a) for a in _answer(model, tok, sets.questions, label, ec, policy, bf16)]
    probes = {
        p: [output_record(name, a) for a in _answer(model, tok, qs, f"{label} / {p}", ec, policy, bf16)]
        for p, qs in sets.probes.items()
    }
    states = None
    if sets.drift:
        with torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16, enabled=bf16):
            states = pooled_states(model, tok, [student_prompt(tok, q, policy) for q in sets.drift]).float()
    return ModelEval(outputs, probes, states)


class EvalCache:
    """``RUN/eval/base/<name>.json`` (+ ``.states.pt``): a model's results under a key of everything they depend on."""

    def __init__(self, root: Path):
        self.root = root

    def get(self, name: str, key: str) -> ModelEval | None:
        f = self.root / f"{name}.json"
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("key") != key:
            return None
        states_file = self.root / f"{name}.states.pt"
        states = torch.load(states_file, map_location="cpu") if states_file.exists() else None
        return ModelEval(data["outputs"], data["probes"], states)

    def put(self, name: str, key: str, ev: ModelEval) -> None:
        import io

        self.root.mkdir(parents=True, exist_ok=True)
        if ev.states is not None:
            buf = io.BytesIO()
            torch.save(ev.states, buf)
            atomic_write_bytes(self.root / f"{name}.states.pt", buf.getvalue())
        payload = {"schema_version": SCHEMA_VERSION, "key": key, "outputs": ev.outputs, "probes": ev.probes}
        atomic_write_text(self.root / f"{name}.json", json.dumps(payload))
