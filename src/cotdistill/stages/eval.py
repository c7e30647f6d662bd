"""The ``eval`` stage: every trained student and its starting point answer the eval split zero-shot with greedy
decoding; accuracy, ensembles, forgetting on probes and representation drift.

Per student (``RUN/students/<name>/``, or its ``best/`` checkpoint when present; a peft adapter directory loads
through ``peft.AutoPeftModelForCausalLM``) the questions are answered by
:func:`~cotdistill.evaluation.answering.answer_questions`, the dev check's own code: the prompt policy's text
rendered as in training, batched greedy decoding (bf16 autocast where the device has it), the answer extracted
strictly from the generated text only. The **base rows** (``eval.base``) are the same students as built from
``students:`` before any training (a preset's seeded random init, the HF/GGUF weights), on the same questions
and prompt, cached in ``RUN/eval/base/`` so a re-run does not pay twice.

Outputs (atomic): ``RUN/eval/outputs.jsonl`` (one record per (student, question)), ``RUN/eval/ensembles.jsonl``
and ``RUN/eval/metrics.json`` (students, base, delta, ensembles, probes, drift).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError
from cotdistill.evaluation.answering import eval_bf16
from cotdistill.evaluation.metrics import before_after, compute_metrics
from cotdistill.evaluation.probes import load_probes
from cotdistill.evaluation.suite import EvalCache, EvalSets, ModelEval, evaluate_model
from cotdistill.io import atomic_write_jsonl, atomic_write_text
from cotdistill.progress import console
from cotdistill.records import Question, read_questions
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


def eval_sets(run: RunDir, cfg: RunConfig) -> EvalSets:
    """The split, the probes (validated before any model loads) and the drift questions."""
    ec = cfg.eval
    questions = eval_questions(run, ec.split)
    probes = load_probes(ec.probes)
    drift = (next(iter(probes.values())) if probes else questions)[: ec.drift_questions] if ec.drift else []
    return EvalSets(ec.split, questions, probes, drift if len(drift) >= 2 else [])


def _trained(run: RunDir, cfg: RunConfig, sets: EvalSets, device: torch.device, bf16: bool) -> dict[str, Any]:
    """Every trained student found in the run, evaluated (its directory recorded as ``source``)."""
    names = student_names(run, cfg)
    found = {n: trained_dir(run.students, n) for n in names}
    missing = [n for n, d in found.items() if d is None]
    if all(d is None for d in found.values()):
        raise CotdistillError(
            f"{run.students}: no trained student found (looked for {', '.join(names) or 'any student directory'})"
        )
    if missing:
        console().print(f"[yellow]not found, skipped:[/] {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name, path in found.items():
        if path is None:
            continue
        model, tok = load_student(path, device)
        out[name] = (evaluate_model(name, model, tok, sets, cfg, bf16, f"eval {name}"), str(path))
        del model
    return out


def _base_key(cfg: RunConfig, index: int, sets: EvalSets, bf16: bool) -> str:
    """What a base row depends on: the student's model (a preset also on its name, position and the seed, which set
    its init; LoRA and lr never matter), the prompt policy, the eval settings that change generations, and every
    question. Students built from the same pretrained weights therefore share one key."""
    sc = cfg.students[index]
    preset = sc.kind == "preset"
    parts = [sc.model_dump_json(exclude={"lr", "lora"} if preset else {"name", "lr", "lora"}), cfg.prompt,
             str(cfg.eval.max_new_tokens), str(bf16), "calculator" if cfg.eval.calculator else "",
             sets.digest(), str(cfg.seed) if preset else "", str(index) if preset else ""]  # fmt: skip
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _relabel(ev: ModelEval, name: str) -> ModelEval:
    """``ev`` with every output record's ``student`` set to ``name``."""

    def relabel(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "student": name} for r in recs]

    return ModelEval(relabel(ev.outputs), {p: relabel(r) for p, r in ev.probes.items()}, ev.states)


def base_evals(run: RunDir, cfg: RunConfig, sets: EvalSets, device: torch.device, bf16: bool) -> dict[str, ModelEval]:
    """Every configured student's starting point, evaluated once and cached in ``RUN/eval/base/``; students built
    from the same pretrained weights share one evaluation."""
    from cotdistill.students.build import initial_student
    from cotdistill.training.data import load_train_data, tokenizer_texts

    cache = EvalCache(run.base_cache)
    texts: list[str] | None = None
    out: dict[str, ModelEval] = {}
    by_key: dict[str, ModelEval] = {}
    for i, sc in enumerate(cfg.students):
        key = _base_key(cfg, i, sets, bf16)
        hit = cache.get(sc.name, key)
        if hit is None and key in by_key:
            hit = _relabel(by_key[key], sc.name)
            cache.put(sc.name, key, hit)
        if hit is None:
            if sc.kind == "preset" and texts is None:
                texts = list(tokenizer_texts(load_train_data(run), cfg.prompt))
            built = initial_student(sc, i, cfg.seed, texts, run.tokenizers_cache, lora=False)
            built.model.to(device)
            hit = evaluate_model(sc.name, built.model, built.tokenizer, sets, cfg, bf16, f"base {sc.name}")
            cache.put(sc.name, key, hit)
            del built
        by_key.setdefault(key, hit)
        out[sc.name] = hit
    return out


def _probe_records(base: dict[str, ModelEval], trained: dict[str, ModelEval]) -> list[dict[str, Any]]:
    """Every probe answer, marked with its probe and whether it is the ``base`` or the ``distilled`` model's."""
    out = []
    for kind, evs in (("base", base), ("distilled", trained)):
        for ev in evs.values():
            for probe, recs in ev.probes.items():
                out.extend({**r, "probe": probe, "model": kind} for r in recs)
    return out


def evaluate_run(run: RunDir, cfg: RunConfig) -> dict[str, Any]:
    """Evaluate every student found in the run (and, with ``eval.base``, its starting point) on ``eval.split``
    and the probes; write metrics, outputs, ensembles."""
    ec = cfg.eval
    sets = eval_sets(run, cfg)
    device = pick_device(ec.device)
    bf16 = eval_bf16(ec.bf16, device)
    torch.manual_seed(cfg.seed)
    trained = _trained(run, cfg, sets, device, bf16)
    base = base_evals(run, cfg, sets, device, bf16) if ec.base and cfg.students else {}
    per_student = {n: ev.outputs for n, (ev, _) in trained.items()}
    sources = {n: src for n, (_, src) in trained.items()}
    metrics = compute_metrics(ec.split, per_student, sets.questions, list(ec.ensemble), sources)
    ens_records = metrics.pop("_ensemble_records")
    metrics.update(before_after({n: ev for n, (ev, _) in trained.items()}, base, list(sets.probes)))
    metrics["bf16"] = bf16
    metrics["prompt"] = cfg.prompt
    run.eval.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(run.outputs, [r for recs in per_student.values() for r in recs])
    atomic_write_jsonl(run.ensembles, ens_records)
    atomic_write_jsonl(run.base_outputs, [r for ev in base.values() for r in ev.outputs])
    atomic_write_jsonl(run.probe_outputs, _probe_records(base, {n: ev for n, (ev, _) in trained.items()}))
    atomic_write_text(run.metrics, json.dumps(metrics, indent=2) + "\n")
    return metrics
