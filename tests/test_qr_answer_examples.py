"""``train.options.answer_examples`` (issue 20): step-by-step's answer-only examples, for any method.

Per path example an answer example (the prompt after ``answer_examples_prefix``, the family's answer sentence for
the gold answer as target); the loss becomes the method's own on the other examples plus ``L_answer`` per student
(the mean CE of its answer examples), as step-by-step's ``L_answer + alpha * L_rationale``.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli
from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family
from cotdistill.training.methods.base import StepInfo
from cotdistill.training.methods.qr_distill.method import QRDistill
from cotdistill.training.methods.sft import SFTMulti, StepByStep
from qr_students import TinyStudent, collate, make_batch, make_model, make_tokenizer, planted_data
from trainutil import TINY, write_add_run, write_config


def _students(n: int = 2) -> list[TinyStudent]:
    out = []
    for i, kind in enumerate(["gpt2", "llama"][:n]):
        tok = make_tokenizer(300 + 40 * i)
        out.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=i, d=32), tok))
    return out


def _cfg(method: str, **options) -> RunConfig:
    return RunConfig(seed=0, prompt="bare", train={"method": method, "options": options})


def test_answer_examples_are_added_per_path_with_the_answer_sentence(tmp_path):
    questions, paths = planted_data(4)
    m = SFTMulti(_cfg("sft-multi", answer_examples=True), _students(1), RunDir.at(tmp_path))
    ex = m.training_examples(questions, paths)
    rationale = [e for e in ex if e.kind != "answer"]
    answers = [e for e in ex if e.kind == "answer"]
    assert len(rationale) == len(answers) == len(paths)
    for a in answers:
        assert a.prompt.startswith("[answer] ") and a.prompt.endswith(a.question.question)
        assert (
            a.target
            == get_family(a.question.task).format_answer(a.question.gold)
            == f"The answer is {a.question.gold}."
        )
    off = SFTMulti(_cfg("sft-multi"), _students(1), RunDir.at(tmp_path))
    assert all(e.kind != "answer" for e in off.training_examples(questions, paths))


def test_the_loss_is_the_methods_own_plus_the_answer_loss(tmp_path):
    questions, paths = planted_data(4)
    students = _students(2)
    m = SFTMulti(_cfg("sft-multi", answer_examples=True), students, RunDir.at(tmp_path))
    ex = m.training_examples(questions, paths)
    batch_ex = [e for e in ex if e.kind != "answer"][:5] + [e for e in ex if e.kind == "answer"][:3]
    out = m.step(make_batch(students, batch_ex), StepInfo(0, 0, 1))
    with torch.no_grad():
        want = 0.0
        for st in students:
            la = float(st.forward(collate(st.tokenizer, batch_ex[5:])).loss.mean())
            lr = float(st.forward(collate(st.tokenizer, batch_ex[:5])).loss.mean())
            assert float(out.losses[f"answer/{st.name}"].detach()) == pytest.approx(la, abs=1e-5)
            assert float(out.losses[f"ce/{st.name}"].detach()) == pytest.approx(la + lr, abs=1e-5)
            want += la + lr
    assert float(out.losses["total"].detach()) == pytest.approx(want, abs=1e-5)


def test_step_by_step_has_them_already(tmp_path):
    questions, paths = planted_data(2)
    m = StepByStep(_cfg("step-by-step", answer_examples=True), _students(1), RunDir.at(tmp_path))
    with pytest.raises(ConfigError, match="answer examples already"):
        m.training_examples(questions, paths)


def test_qr_distill_routes_only_the_paths(tmp_path):
    """Answer examples go to every student, outside the router; a batch of answers only still trains."""
    questions, paths = planted_data(4)
    students = _students(2)
    m = QRDistill(_cfg("qr-distill", answer_examples=True), students, RunDir.at(tmp_path))
    ex = m.training_examples(questions, paths)
    mixed = [e for e in ex if e.kind != "answer"][:6] + [e for e in ex if e.kind == "answer"][:4]
    out = m.step(make_batch(students, mixed), StepInfo(0, 0, 1))
    assert len(out.records["routing"]) == 6 * 2
    assert {"answer/s0-gpt2", "answer/s1-llama", "entropy", "mutual", "total"} <= set(out.losses)
    only = m.step(make_batch(students, [e for e in ex if e.kind == "answer"][:3]), StepInfo(1, 0, 2))
    assert set(only.losses) == {"answer/s0-gpt2", "answer/s1-llama", "ce/s0-gpt2", "ce/s1-llama", "total"}
    only.losses["total"].backward()
    assert students[0].model.transformer.wte.weight.grad is not None


def test_through_the_loop(tmp_path):
    run = write_add_run(tmp_path / "run", n_train=12, n_dev=0, paths_per_q=1)
    cfg = write_config(tmp_path / "c.yaml", [TINY], method="sft-multi", epochs=1, batch_size=8,
                       options={"answer_examples": True})  # fmt: skip
    r = run_cli("train", str(run), "-c", str(cfg))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((run / "logs" / "train_summary.json").read_text())
    assert summary["examples"] == 24
    first = json.loads((run / "logs" / "train_metrics.jsonl").read_text().splitlines()[0])
    assert {"answer/s", "ce/s", "total"} <= set(first["losses"])
