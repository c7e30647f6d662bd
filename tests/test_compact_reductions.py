"""COMPACT's reductions through the real loop (METHODS.md §2g, issue 21): K = 1 with lambda = 0 is ``sft-single``
and all coefficients 0 with lambda = 0 is ``sft-multi``, step for step over a whole short run, both variants.

COMPACT batches question-major (a question's branches in one step), ``sft-single`` / ``sft-multi`` batch by path,
so the baselines run here as test-only methods that are the same classes with ``batching = "question"``: the
same examples, in the same batches, through the same loop. Every step's logged loss and the final weights must
agree. The union reduction needs equal path counts per teacher (a teacher's share never grows with its count:
with uneven counts COMPACT's zero-coefficient objective is the teacher-uniform mixture, by design).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from cotdistill.config import load_config
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import Question, ReasoningPath
from cotdistill.rundir import RunDir
from cotdistill.stages.train import train
from cotdistill.training.methods import registry
from cotdistill.training.methods.options import SFTMultiOptions, SFTSingleOptions
from cotdistill.training.methods.sft import SFTMulti, SFTSingle

TINY = {"name": "s", "kind": "preset", "preset": "tiny-gpt2",
        "size": {"vocab": 300, "d_model": 32, "n_head": 2, "d_ff": 64, "n_layer": 1, "n_positions": 160}}  # fmt: skip


class MultiQM(SFTMulti):
    name = "sft-multi-qm"
    batching = "question"


class SingleQM(SFTSingle):
    name = "sft-single-qm"
    batching = "question"


@pytest.fixture(autouse=True)
def question_major_baselines():
    registry.register_method("sft-multi-qm", SFTMultiOptions, MultiQM, "test only: sft-multi, question-major")
    registry.register_method("sft-single-qm", SFTSingleOptions, SingleQM, "test only: sft-single, question-major")
    yield
    registry._METHODS.pop("sft-multi-qm", None)
    registry._METHODS.pop("sft-single-qm", None)


PHRASES = {"a": "{x} + {y} = {s}.", "b": "First {x}, then {y} more: {s} in all.", "c": "Adding {y} to {x} gives {s}."}


def write_run(root: Path, teachers: list[str], per_teacher: int, n: int = 9) -> Path:
    """Question-major paths; the teachers phrase differently, teacher c is wrong on every third question, and
    consensus values below v1's c_min are recorded (with lambda_c = 0 the cut must not apply)."""
    qs, ps = [], []
    for i in range(n):
        x, y = 3 + i, 4 + 2 * i
        q = Question(id=f"q{i}", task="math", question=f"What is {x} + {y}?", gold=str(x + y))
        qs.append(q)
        for t in teachers:
            for k in range(per_teacher):
                s = x + y + (1 if t == "c" and i % 3 == 0 else 0)
                body = PHRASES[t].format(x=x, y=y, s=s) + (" Check." if k else "")
                ps.append(ReasoningPath(id=f"{q.id}|{t}|cot|{k}", question_id=q.id, teacher=t, style="cot", sample=k,
                                        text=f"{body} The answer is {s}.",
                                        checks={"kept": True, "consensus": 0.1 * (i % 4)}))  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(root / "questions.jsonl", qs)
    atomic_write_jsonl(root / "filtered.jsonl", ps)
    return root


def run_method(
    tmp_path: Path, name: str, teachers: list[str], per_teacher: int, method: str, options: dict, batch: int = 7
):
    run = write_run(tmp_path / name, teachers, per_teacher)
    cfg_path = tmp_path / f"{name}.yaml"
    cfg = {"seed": 0, "students": [TINY], "prompt": "bare",
           "train": {"method": method, "epochs": 2, "batch_size": batch, "grad_accum": 2, "max_length": 160,
                     "trackers": [], "bf16": False, "options": options}}  # fmt: skip
    cfg_path.write_text(yaml.safe_dump(cfg))
    train(RunDir.at(run), load_config(cfg_path))
    losses = [json.loads(x)["losses"] for x in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]
    return losses, load_file(run / "students" / "s" / "model.safetensors"), run


def assert_same_run(a, b) -> None:
    (la, wa, _), (lb, wb, _) = a, b
    assert len(la) == len(lb) >= 6
    assert [x["total"] for x in la] == pytest.approx([x["total"] for x in lb], abs=1e-6, rel=1e-6)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


PAPER_ZERO = {"beta1": 0, "beta2": 0, "beta3": 0, "lambda_mcon": 0, "unfiltered": True}
V1_ZERO = {"variant": "v1", "lambda_c": 0, "lambda_a": 0, "lambda_d": 0, "unfiltered": True}  # default c_min


@pytest.mark.parametrize("options", [PAPER_ZERO, V1_ZERO], ids=["paper", "v1"])
def test_all_coefficients_zero_is_the_union_through_the_loop(tmp_path, options):
    union = run_method(tmp_path, "union", ["a", "b", "c"], 2, "sft-multi-qm", {})
    compact = run_method(tmp_path, "compact", ["a", "b", "c"], 2, "compact", options)
    assert_same_run(compact, union)
    recs = [json.loads(x) for x in (compact[2] / "logs" / "compact_weights.jsonl").read_text().splitlines()]
    assert len(recs) == 2 * 9 * 3 and all(r["weight"] == pytest.approx(1 / 3) for r in recs)
    # and the default coefficients take other steps (the comparison can fail)
    variant = {"variant": options["variant"]} if "variant" in options else {}
    other = run_method(
        tmp_path, "default", ["a", "b", "c"], 2, "compact", {"unfiltered": True, "warmup_ratio": 0, **variant}
    )
    assert [x["total"] for x in other[0]] != pytest.approx([x["total"] for x in union[0]], abs=1e-6)


@pytest.mark.parametrize("options", [{"lambda_mcon": 0}, {"variant": "v1"}], ids=["paper", "v1"])
def test_one_teacher_is_sft_single_through_the_loop(tmp_path, options):
    """K = 1, one path per question: the default coefficients (with lambda = 0) cannot matter."""
    single = run_method(tmp_path, "single", ["b"], 1, "sft-single-qm", {}, batch=2)
    compact = run_method(tmp_path, "compact", ["b"], 1, "compact", {**options, "warmup_ratio": 0}, batch=2)
    assert_same_run(compact, single)
