"""COMPACT v1 (METHODS.md §2f) on a tiny student: per-batch reductions to SFT / the uniform union, per-teacher shares,
weights, logs, state. The paper variant is tested in ``test_compact_paper.py``, the reductions through the loop in
``test_compact_reductions.py``."""

from __future__ import annotations

import math

import pytest
import torch

from compact_harness import TinyStudent, collate, question_batches, synthetic_data, train_tokenizer
from cotdistill.config import RunConfig
from cotdistill.rundir import RunDir
from cotdistill.training.methods import method_spec
from cotdistill.training.methods.base import StepInfo
from cotdistill.training.methods.compact.method import CompactMethod

ZERO = {"lambda_c": 0, "lambda_a": 0, "lambda_d": 0}  # the default c_min: the cut belongs to C (issue 21)


@pytest.fixture(scope="module")
def tokenizer():
    qs, ps = synthetic_data(30, {"a": 2})
    return train_tokenizer([q.question for q in qs.values()] + [p.text for p in ps])


def make(tokenizer, options: dict, tmp_path, seed: int = 0) -> CompactMethod:
    options = {"variant": "v1", **options}
    cfg = RunConfig.model_validate({"train": {"method": "compact", "options": options, "max_length": 256}})
    return CompactMethod(cfg, [TinyStudent(tokenizer, seed=seed)], RunDir.at(tmp_path))


def run_steps(method, batches, reference: bool, steps: int, total: int = 100) -> list[torch.Tensor]:
    """Train ``steps`` AdamW steps; ``reference`` uses the plain mean of per-example CE (SFT / uniform union)."""
    student = method.students[0]
    opt = torch.optim.AdamW(student.model.parameters(), lr=1e-2)
    trace = []
    for step in range(steps):
        batch = collate(batches[step % len(batches)], student)
        if reference:
            loss = student.forward(batch.inputs[student.name]).loss.mean()
        else:
            loss = method.compute(batch, StepInfo(step=step, epoch=0, total_steps=total)).losses["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        trace.append(loss.detach().clone())
    return trace + [p.detach().clone() for p in student.model.parameters()]


def test_registered_question_major():
    assert method_spec("compact").load() is CompactMethod and CompactMethod.batching == "question"


def test_one_teacher_equals_single_teacher_sft_step_for_step(tokenizer, tmp_path):
    qs, ps = synthetic_data(6, {"solo": 1}, seed=1)
    m = make(tokenizer, {}, tmp_path)  # default coefficients: with K = 1 they must not matter
    batches = question_batches(m.examples(qs, ps), 4)
    got = run_steps(m, batches, reference=False, steps=3)
    want = run_steps(make(tokenizer, {}, tmp_path), batches, reference=True, steps=3)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-6, rtol=1e-5)


def test_all_coefficients_zero_equals_uniform_union_step_for_step(tokenizer, tmp_path):
    # equal path counts per teacher: the teacher-uniform mixture is the union, sft-multi's plain mean over paths
    qs, ps = synthetic_data(4, {"a": 2, "b": 2, "c": 2}, seed=2)
    for i, p in enumerate(ps):
        p.checks["consensus"] = (i % 5) / 4  # some below c_min: with lambda_c = 0 the cut must not apply
        p.text = "So " * ("abc".index(p.teacher) * 3) + p.text  # the teachers' losses differ
    m = make(tokenizer, ZERO, tmp_path)
    batches = question_batches(m.examples(qs, ps), 2)
    got = run_steps(m, batches, reference=False, steps=3, total=3)
    want = run_steps(make(tokenizer, ZERO, tmp_path), batches, reference=True, steps=3)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-6, rtol=1e-5)
    # and with default coefficients the step differs (the test could fail)
    m2 = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    other = run_steps(m2, batches, reference=False, steps=1)
    assert not torch.allclose(other[0], want[0])


def test_a_teachers_share_does_not_grow_with_its_path_count(tokenizer, tmp_path):
    """Uneven counts (1, 2, 3 paths): at zero coefficients each teacher's share of the loss is 1/K, split evenly
    over its paths, and the logged weight is that share (the gradient of the total w.r.t. each path's loss)."""
    qs, ps = synthetic_data(2, {"a": 1, "b": 2, "c": 3}, seed=2)
    m = make(tokenizer, ZERO, tmp_path)
    batch = collate(question_batches(m.examples(qs, ps), 2)[0], m.students[0])
    student = m.students[0]
    captured = {}
    forward = student.forward

    def spy(inputs, **kw):
        out = forward(inputs, **kw)
        if out.loss.requires_grad:  # the training forward (not the no-grad scoring passes)
            out.loss.retain_grad()
            captured["loss"] = out.loss
        return out

    student.forward = spy
    res = m.compute(batch, StepInfo(step=0, epoch=0, total_steps=10))
    res.losses["total"].backward()
    # d total / d L_path is N_q * share / (n_t * B) with B = 2 * N_q (two questions): sum over a teacher's paths x 2
    grad = captured["loss"].grad.double() * 2
    share: dict[tuple[str, str], float] = {}
    for ex, g in zip(batch.examples, grad.tolist(), strict=True):
        share[(ex.question.id, ex.path.teacher)] = share.get((ex.question.id, ex.path.teacher), 0.0) + g
    logged = {(r["question_id"], r["teacher"]): r["weight"] for r in res.records["compact_weights"]}
    assert share == pytest.approx(logged) and list(logged.values()) == pytest.approx([1 / 3] * 6)


def weights_by_question(records):
    out: dict[str, float] = {}
    for r in records:
        out[r["question_id"]] = out.get(r["question_id"], 0.0) + r["weight"]
    return out


def test_weights_sum_to_one_and_logs(tokenizer, tmp_path):
    qs, ps = synthetic_data(6, {"a": 1, "b": 1, "c": 2}, seed=3)
    for p in ps:
        p.checks["consensus"] = 0.9 if p.teacher != "c" else 0.1  # c is cut by c_min
    m = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    student = m.students[0]
    batch = collate(question_batches(m.examples(qs, ps), 3)[0], student)
    res = m.compute(batch, StepInfo(step=0, epoch=0, total_steps=10))
    recs = res.records["compact_weights"]
    assert len(recs) == 3 * 3 and set(recs[0]) == {"question_id", "teacher", "weight", "C", "A", "D"}
    assert all(sum_w == pytest.approx(1.0) for sum_w in weights_by_question(recs).values())
    assert all(r["weight"] == 0 for r in recs if r["teacher"] == "c")
    assert all(r["A"] is not None and math.isfinite(r["A"]) for r in recs)  # answer spans found
    assert all(r["D"] > 0 for r in recs)
    assert res.scalars["compact/weight/c"] == 0.0
    assert res.scalars["compact/weight/a"] + res.scalars["compact/weight/b"] == pytest.approx(1.0)
    assert 0 < res.scalars["compact/weight_entropy"] <= math.log(3)
    assert {"compact/C/a", "compact/A/b", "compact/D/c"} <= set(res.scalars)
    assert torch.isfinite(res.losses["total"])


@pytest.mark.parametrize("case", ["ties", "single", "all_cut", "no_consensus", "no_answer_span"])
def test_no_nan(tokenizer, tmp_path, case):
    teachers = {"solo": 1} if case == "single" else {"a": 1, "b": 1}
    qs, ps = synthetic_data(4, teachers, seed=4)
    for p in ps:
        if case == "ties":
            p.checks["consensus"] = 0.5
            p.text = "Same text.\nThe answer is 7."
        elif case == "all_cut":
            p.checks["consensus"] = 0.0
        elif case == "no_answer_span":
            p.text = "I do not know."
        elif case != "no_consensus":
            p.checks["consensus"] = 1.0
    m = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    batch = collate(question_batches(m.examples(qs, ps), 4)[0], m.students[0])
    res = m.compute(batch, StepInfo(step=0, epoch=0, total_steps=10))
    ws = [r["weight"] for r in res.records["compact_weights"]]
    assert all(math.isfinite(w) for w in ws)
    assert all(v == pytest.approx(1.0) for v in weights_by_question(res.records["compact_weights"]).values())
    assert torch.isfinite(res.losses["total"]) and all(math.isfinite(v) for v in res.scalars.values())
    res.losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in m.students[0].model.parameters() if p.grad is not None)


def test_rejected_paths_dropped_unless_unfiltered(tokenizer, tmp_path):
    qs, ps = synthetic_data(3, {"a": 1, "b": 1}, seed=5)
    ps[0].checks["kept"] = False
    assert len(make(tokenizer, {}, tmp_path).examples(qs, ps)) == len(ps) - 1
    assert len(make(tokenizer, {"unfiltered": True}, tmp_path).examples(qs, ps)) == len(ps)


def test_difficulty_ema_state_saved_and_resumed(tokenizer, tmp_path):
    qs, ps = synthetic_data(8, {"a": 1, "b": 1}, seed=6)
    m = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    batches = question_batches(m.examples(qs, ps), 4)
    student = m.students[0]
    m.compute(collate(batches[0], student), StepInfo(0, 0, 10))
    assert m.state_dict()["ema"]["ema"] == {}  # folded in at the end of the optimizer step, not per micro-batch
    m.on_step_end(1)
    state = m.state_dict()
    assert set(state["ema"]["ema"]) == {"a", "b"}
    resumed = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    resumed.students = m.students
    resumed.load_state_dict(state)
    b1 = collate(batches[1], student)
    with torch.no_grad():
        r1 = m.compute(b1, StepInfo(1, 0, 10)).records["compact_weights"]
        r2 = resumed.compute(b1, StepInfo(1, 0, 10)).records["compact_weights"]
    assert r1 == r2
    fresh = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    fresh.students = m.students
    with torch.no_grad():
        r3 = fresh.compute(b1, StepInfo(1, 0, 10)).records["compact_weights"]
    assert [r["D"] for r in r3] != [r["D"] for r in r1]  # without the state the EMA differs


def test_ablation_without_a_skips_the_prior_pass(tokenizer, tmp_path, monkeypatch):
    qs, ps = synthetic_data(4, {"a": 1, "b": 1}, seed=7)
    m = make(tokenizer, {"use_a": False}, tmp_path)
    called = []
    monkeypatch.setattr(m.v1, "_no_grad_scores", lambda *a: called.append(1) or ({}, {}))
    res = m.compute(collate(question_batches(m.examples(qs, ps), 4)[0], m.students[0]), StepInfo(5, 0, 10))
    assert not called and all(r["A"] is None for r in res.records["compact_weights"])


def test_a_defined_for_wrong_or_missing_answers(tokenizer, tmp_path):
    """Paths without the gold answer span get log p(y*|x, r) from the no-grad pass (rationale + gold answer)."""
    qs, ps = synthetic_data(3, {"a": 1, "b": 1, "c": 1}, seed=8)
    for p in ps:
        if p.teacher == "b":
            p.text = p.text.rsplit("The answer is", 1)[0] + "The answer is 999."
        elif p.teacher == "c":
            p.text = p.text.rsplit("The answer is", 1)[0]  # truncated before the answer
    m = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    batch = collate(question_batches(m.examples(qs, ps), 3)[0], m.students[0])
    with torch.no_grad():
        recs = m.compute(batch, StepInfo(0, 0, 10)).records["compact_weights"]
    assert len(recs) == 9 and all(r["A"] is not None and math.isfinite(r["A"]) for r in recs)
    # the same rationale closed with the gold answer scores like the path itself (same context, same tokens)
    a = {(r["question_id"], r["teacher"]): r["A"] for r in recs}
    for qid in qs:
        assert a[(qid, "b")] == pytest.approx(a[(qid, "a")], abs=0.05)
