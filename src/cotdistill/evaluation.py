"""Evaluation: each trained student answers the eval split zero-shot with greedy decoding; accuracy and ensembles.

Per student (``RUN/students/<name>/``, or its ``best/`` checkpoint when present; a peft adapter directory loads
through ``peft.AutoPeftModelForCausalLM``): the prompt is ``get_family(q.task).student_prompt(q)`` wrapped in the
student's chat template when it has one (``add_generation_prompt=True``, the training side's rule), generation is
batched greedy decoding (left padding, prompts sorted by length, stop at EOS, ``eval.max_new_tokens``), and the
answer is extracted strictly from the generated text only. Each generation's mean token log-probability (the
EOS token included when it was generated) is recorded for the log-prob ensemble.

Outputs (atomic): ``RUN/eval/outputs.jsonl`` (one record per (student, question)), ``RUN/eval/ensembles.jsonl``
(one record per question with each ensemble's pick, when there are two or more students) and
``RUN/eval/metrics.json``::

    {"split", "students": {name: {"accuracy", "n", "by_task": {task: acc}, "truncation_rate", "source"}},
     "ensembles": {"vote": acc, "logprob": acc}, "ensembles_by_task": {"vote": {task: acc}, ...}}

A generation is *truncated* when it produced no EOS within ``max_new_tokens`` and no answer could be extracted.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError
from cotdistill.io import atomic_write_jsonl, atomic_write_text
from cotdistill.records import SCHEMA_VERSION, Question, read_questions
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family

# ---------------------------------------------------------------------------------------------------------------
# Loading students


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").exists() or (path / "adapter_config.json").exists())


def student_dir(run: RunDir, name: str) -> Path | None:
    """Where student ``name`` lives: ``best/`` when it holds a model, else the student directory; None if absent."""
    root = run.students / name
    if _is_model_dir(root / "best"):
        return root / "best"
    if _is_model_dir(root):
        return root
    return None


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU (nothing depends on CUDA)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_student(path: str | Path, device: torch.device | str = "cpu") -> tuple[Any, Any]:
    """A saved student (plain HF directory or peft adapter directory) and its tokenizer, in eval mode on ``device``.

    An adapter is merged into its base model for speed; the tokenizer comes from the student directory when it was
    saved there, else from the adapter's base model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        if (path / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            adapter_cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base = adapter_cfg.get("base_model_name_or_path")
            model = AutoPeftModelForCausalLM.from_pretrained(str(path)).merge_and_unload()
            tok_src = path if (path / "tokenizer_config.json").exists() or not base else Path(base)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path))
            tok_src = path
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CotdistillError(f"{path}: cannot load the student ({first})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_src))
    except (OSError, ValueError) as e:
        raise CotdistillError(f"{tok_src}: no usable tokenizer saved with the student ({e})") from None
    model.to(device)
    model.eval()
    return model, tokenizer


def format_prompt(tokenizer: Any, text: str) -> str:
    """The student's input text: exactly the training side's rule (``training.collate.render_prompt``)."""
    from cotdistill.training.collate import render_prompt

    return render_prompt(tokenizer, text)


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a formatted prompt exactly as training encodes it (``training.collate.rendered_ids``)."""
    from cotdistill.training.collate import rendered_ids

    return rendered_ids(tokenizer, text)


# ---------------------------------------------------------------------------------------------------------------
# Greedy generation


@dataclass
class Generation:
    """One greedy generation: decoded text (EOS and after dropped), token count, whether EOS came, mean log-prob."""

    text: str
    n_tokens: int
    hit_eos: bool
    mean_logprob: float


class _LogprobRecorder:
    """A logits processor that leaves scores unchanged and records the log-prob of the greedy (argmax) token."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(torch.log_softmax(scores.float(), dim=-1).max(dim=-1).values.cpu())
        return scores


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gc_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gc_eos, int):
        ids.add(gc_eos)
    elif isinstance(gc_eos, list | tuple):
        ids.update(int(i) for i in gc_eos)
    if not ids:
        raise CotdistillError("the student's tokenizer has no EOS token: cannot tell where a generation stops")
    return sorted(ids)


@torch.inference_mode()
def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
    sort_by_length: bool = True,
) -> list[Generation]:
    """Batched greedy decoding of already-formatted ``prompts`` (left padding, longest first), in input order.

    ``sort_by_length`` batches prompts of similar length together (less padding); off only for benchmarks.

    Stops each sequence at EOS. The mean log-prob is over the generated tokens up to and including EOS, under the
    scores greedy decoding chose from (repetition penalties and the like are switched off).
    """
    from transformers import GenerationConfig, LogitsProcessorList

    eos = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    device = next(model.parameters()).device
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        eos_token_id=eos,
        pad_token_id=pad_id,
    )
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i])) if sort_by_length else list(range(len(prompts)))
    results: list[Generation | None] = [None] * len(prompts)
    eos_t = torch.tensor(eos)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # left padding: every prompt ends where generation starts
            e = encoded[i]
            ids[row, width - len(e) :] = torch.tensor(e, dtype=torch.long)
            mask[row, width - len(e) :] = 1
        enc = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        rec = _LogprobRecorder()
        out = model.generate(**enc, generation_config=gen_cfg, logits_processor=LogitsProcessorList([rec]))
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        lp = torch.stack(rec.steps, dim=1) if rec.steps else torch.zeros(len(idx), 0)
        for row, i in enumerate(idx):
            toks = new[row]
            is_eos = torch.isin(toks, eos_t)
            hit = bool(is_eos.any())
            n = int(is_eos.nonzero()[0, 0]) + 1 if hit else len(toks)
            text = tokenizer.decode(toks[: n - 1 if hit else n], skip_special_tokens=True)
            mean_lp = float(lp[row, :n].mean()) if n > 0 else float("-inf")
            results[i] = Generation(text=text, n_tokens=n, hit_eos=hit, mean_logprob=mean_lp)
        if on_batch is not None:
            on_batch(len(idx))
    return [r for r in results if r is not None]


# ---------------------------------------------------------------------------------------------------------------
# Ensembles


def _group(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> list[tuple[str, list[int]]]:
    """Answers grouped by equivalence, groups in order of first appearance: (representative, student indices)."""
    groups: list[tuple[str, list[int]]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for rep, members in groups:
            if same(a, rep):
                members.append(i)
                break
        else:
            groups.append((a, [i]))
    return groups


def vote(answers: Sequence[str | None], same: Callable[[str, str], bool] | None = None) -> str | None:
    """Majority vote over extracted answers (None abstains); a tie goes to the answer of the earliest student.

    ``same`` decides whether two answers agree (default: equal strings; eval passes the task family's equivalence).
    """
    groups = _group(answers, same or (lambda a, b: a == b))
    if not groups:
        return None
    best = max(len(m) for _, m in groups)
    return next(rep for rep, m in groups if len(m) == best)  # groups are in first-appearance (student) order


def logprob_pick(answers: Sequence[str | None], scores: Sequence[float]) -> str | None:
    """The answer of the student whose generation has the highest mean token log-prob.

    Students with no extracted answer are passed over (None only when nobody answered); ties go to the earliest.
    """
    if len(answers) != len(scores):
        raise ValueError("one score per answer")
    best_i = None
    for i, (a, s) in enumerate(zip(answers, scores, strict=True)):
        if a is None or s is None or math.isnan(s):
            continue
        if best_i is None or s > scores[best_i]:
            best_i = i
    return None if best_i is None else answers[best_i]


# ---------------------------------------------------------------------------------------------------------------
# The stage


def _acc(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 6) if flags else 0.0


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
    return sorted(p.name for p in run.students.iterdir() if student_dir(run, p.name) is not None)


def evaluate_run(run: RunDir, cfg: RunConfig, console: Any | None = None) -> dict[str, Any]:
    """Evaluate every student found in the run on ``cfg.eval.split``; write metrics, outputs, ensembles."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ec = cfg.eval
    questions = eval_questions(run, ec.split)
    names = student_names(run, cfg)
    found = [(n, student_dir(run, n)) for n in names]
    missing = [n for n, d in found if d is None]
    found = [(n, d) for n, d in found if d is not None]
    if not found:
        raise CotdistillError(
            f"{run.students}: no trained student found (looked for {', '.join(names) or 'any student directory'})"
        )
    if missing and console is not None:
        console.print(f"[yellow]not found, skipped:[/] {', '.join(missing)}")
    device = pick_device(ec.device)
    torch.manual_seed(cfg.seed)

    outputs: list[dict[str, Any]] = []
    per_student: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, str] = {}
    with Progress(
        TextColumn("[bold]eval[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=console is None,
    ) as progress:
        for name, path in found:
            model, tok = load_student(path, device)
            prompts = [format_prompt(tok, get_family(q.task).student_prompt(q)) for q in questions]
            task_id = progress.add_task(name, total=len(prompts))
            gens = greedy_generate(
                model,
                tok,
                prompts,
                ec.max_new_tokens,
                ec.batch_size,
                on_batch=lambda k, t=task_id: progress.advance(t, k),
            )
            recs = []
            for q, g in zip(questions, gens, strict=True):
                fam = get_family(q.task)
                ans = fam.extract(g.text, q)
                recs.append(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "student": name,
                        "question_id": q.id,
                        "task": q.task,
                        "text": g.text,
                        "answer": ans,
                        "gold": q.gold,
                        "correct": bool(fam.equivalent(ans, q.gold)),
                        "mean_logprob": round(g.mean_logprob, 6),
                        "n_tokens": g.n_tokens,
                        "hit_eos": g.hit_eos,
                        "truncated": (not g.hit_eos) and ans is None,
                    }
                )
            per_student[name] = recs
            sources[name] = str(path)
            outputs.extend(recs)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()

    metrics = compute_metrics(ec.split, per_student, questions, list(ec.ensemble), sources)
    ens_records = metrics.pop("_ensemble_records")
    run.eval.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(run.eval / "outputs.jsonl", outputs)
    atomic_write_jsonl(run.eval / "ensembles.jsonl", ens_records)
    atomic_write_text(run.eval / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def compute_metrics(
    split: str,
    per_student: dict[str, list[dict[str, Any]]],
    questions: Sequence[Question],
    ensembles: Sequence[str] = ("vote", "logprob"),
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metrics.json from per-student output records (each list in ``questions`` order); ensembles with 2+ students.

    The returned dict also holds ``_ensemble_records`` (per-question picks), which the caller pops and saves.
    """
    students: dict[str, Any] = {}
    for name, recs in per_student.items():
        by_task: dict[str, list[bool]] = defaultdict(list)
        for r in recs:
            by_task[r["task"]].append(r["correct"])
        students[name] = {
            "accuracy": _acc([r["correct"] for r in recs]),
            "n": len(recs),
            "by_task": {t: _acc(v) for t, v in sorted(by_task.items())},
            "truncation_rate": _acc([r["truncated"] for r in recs]),
        }
        if sources and name in sources:
            students[name]["source"] = sources[name]
    ens: dict[str, float] = {}
    ens_by_task: dict[str, dict[str, float]] = {}
    ens_records: list[dict[str, Any]] = []
    names = list(per_student)
    if len(names) >= 2 and ensembles:
        flags: dict[str, list[bool]] = {e: [] for e in ensembles}
        flags_task: dict[str, dict[str, list[bool]]] = {e: defaultdict(list) for e in ensembles}
        for qi, q in enumerate(questions):
            fam = get_family(q.task)
            answers = [per_student[n][qi]["answer"] for n in names]
            scores = [per_student[n][qi]["mean_logprob"] for n in names]
            rec: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "question_id": q.id, "task": q.task}
            for e in ensembles:
                if e == "vote":
                    pick = vote(answers, same=fam.equivalent)
                else:
                    pick = logprob_pick(answers, scores)
                ok = bool(fam.equivalent(pick, q.gold))
                flags[e].append(ok)
                flags_task[e][q.task].append(ok)
                rec[e] = {"answer": pick, "correct": ok}
            ens_records.append(rec)
        ens = {e: _acc(v) for e, v in flags.items()}
        ens_by_task = {e: {t: _acc(v) for t, v in sorted(d.items())} for e, d in flags_task.items()}
    return {
        "split": split,
        "students": students,
        "ensembles": ens,
        "ensembles_by_task": ens_by_task,
        "_ensemble_records": ens_records,
    }


def metrics_table(metrics: dict[str, Any]) -> Any:
    """A rich table of metrics.json: students and ensembles, overall and per task family."""
    from rich.table import Table

    tasks = sorted({t for s in metrics["students"].values() for t in s["by_task"]})
    table = Table(title=f"eval on split '{metrics['split']}'")
    for col in ("model", "accuracy", "n", *tasks, "truncated"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in metrics["students"].items():
        table.add_row(
            name,
            f"{s['accuracy']:.1%}",
            str(s["n"]),
            *[f"{s['by_task'][t]:.1%}" if t in s["by_task"] else "-" for t in tasks],
            f"{s['truncation_rate']:.1%}",
        )
    for e, acc in metrics.get("ensembles", {}).items():
        bt = metrics.get("ensembles_by_task", {}).get(e, {})
        table.add_row(f"ensemble: {e}", f"{acc:.1%}", "", *[f"{bt[t]:.1%}" if t in bt else "-" for t in tasks], "")
    return table
