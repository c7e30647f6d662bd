"""Acceptance 1 of issue 20: a planted preference is learned by the router at its default settings.

Two students with different tokenizers (a GPT-2 and a Llama), each first warmed up on its own style (student 0 on
``cot``, student 1 on ``program``; ``vanilla`` is neutral), then a short QR-Distill run with the default options
(the shared loop in miniature, ``qr_students.run_method``). The router must send each planted style mostly to its
student: per-style selection rates without fallbacks differ by >= 0.3 between the students on both planted styles,
and the Spearman correlation between a gate's probability and the student's centred loss is below -0.3. The
control (``routing: random``, the router frozen at its initialisation) must not.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cotdistill.config import RunConfig
from cotdistill.rundir import RunDir
from cotdistill.training.methods.base import Example
from cotdistill.training.methods.qr_distill.method import QRDistill
from qr_students import PLANTED, TinyStudent, collate, run_method, warmed_planted_pair

EPOCHS = 4


@pytest.fixture(scope="module")
def warmed():
    return warmed_planted_pair()


def _style_loss(st: TinyStudent, questions, paths, style: str) -> float:
    qs = questions
    ex = [Example(qs[p.question_id], qs[p.question_id].question, p.text) for p in paths if p.style == style]
    with torch.no_grad():
        return float(st.forward(collate(st.tokenizer, ex)).loss.mean())


def _run(tmp_path, warmed, **options) -> list[dict]:
    questions, paths, students = warmed
    students = copy.deepcopy(students)
    cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": options})
    m = QRDistill(cfg, students, RunDir.at(tmp_path))
    return run_method(m, students, m.examples(questions, paths), epochs=EPOCHS, seed=0)


def _last(recs: list[dict]) -> tuple[dict[tuple[str, str], float], dict[str, float], dict[str, float]]:
    last = [r for r in recs if r["epoch"] == EPOCHS - 1]
    rates = {(r["style"], r["student"][:2]): r["rate_no_fallback"] for r in last if r["kind"] == "style"}
    rho = {r["student"][:2]: r["spearman"] for r in last if r["kind"] == "student"}
    spread = {r["student"][:2]: r["prob_std"] for r in last if r["kind"] == "student"}
    return rates, rho, spread


def test_the_warm_up_plants_a_preference(warmed):
    questions, paths, students = warmed
    for st, own, other in ((students[0], *PLANTED), (students[1], *PLANTED[::-1])):
        assert _style_loss(st, questions, paths, own) < _style_loss(st, questions, paths, other) - 0.5


def test_router_sends_each_planted_style_to_its_student(tmp_path, warmed):
    rates, rho, spread = _last(_run(tmp_path, warmed))
    assert rates[("cot", "s0")] - rates[("cot", "s1")] >= 0.3, rates
    assert rates[("program", "s1")] - rates[("program", "s0")] >= 0.3, rates
    assert rho["s0"] < -0.3 and rho["s1"] < -0.3, rho
    assert spread["s0"] > 0.3 and spread["s1"] > 0.3, spread  # decided gates, not coin flips


def test_the_frozen_router_control_does_not(tmp_path, warmed):
    """routing: random samples gates from the seeded initial router and never moves it: no planted preference.

    Its Spearman correlation alone can still be negative (measured: -0.13 and -0.48 here): the frozen router's
    small fixed preferences decide which paths a student trains on, and a student's loss falls on the paths it
    trains on. The spread of the probabilities tells the two apart."""
    rates, rho, spread = _last(_run(tmp_path, warmed, routing="random"))
    assert abs(rates[("cot", "s0")] - rates[("cot", "s1")]) < 0.3, rates
    assert abs(rates[("program", "s1")] - rates[("program", "s0")]) < 0.3, rates
    assert spread["s0"] < 0.1 and spread["s1"] < 0.1, spread
