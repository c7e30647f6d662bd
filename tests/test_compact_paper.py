"""COMPACT's paper variant (METHODS.md §2a-§2e) on tiny students: the signals, L_MCon, the shares, no NaN, and the
answer distributions of a wrong branch equal to a full pass over its closed rationale (without that pass)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from compact_harness import HFStudent, TinyStudent, collate, question_batches, synthetic_data, train_tokenizer
from cotdistill.config import RunConfig
from cotdistill.rundir import RunDir
from cotdistill.students.encoding import collate as collate_encoded
from cotdistill.students.encoding import encode
from cotdistill.training.methods.base import StepInfo
from cotdistill.training.methods.compact import paper as paper_mod
from cotdistill.training.methods.compact.branches import answer_logprobs, batch_branches, continuations, gold_vectors
from cotdistill.training.methods.compact.method import CompactMethod
from cotdistill.training.methods.compact.signals import (
    attention_projection,
    consensus,
    information_gain,
    mcon,
    random_projection,
    symmetric_kl,
)


@pytest.fixture(scope="module")
def tokenizer():
    qs, ps = synthetic_data(30, {"a": 2})
    texts = [q.question for q in qs.values()] + [p.text for p in ps] + ["Let me see. So 999 99 wrong maybe"]
    return train_tokenizer(texts)


@pytest.fixture(scope="module")
def digits():
    """A byte-level BPE with almost no merges: every number is several tokens (the continuation path runs)."""
    qs, ps = synthetic_data(30, {"a": 2})
    return train_tokenizer([q.question for q in qs.values()] + [p.text for p in ps], vocab_size=280)


def make(tokenizer, options: dict, tmp_path, student=None) -> CompactMethod:
    cfg = RunConfig.model_validate({"train": {"method": "compact", "options": options, "max_length": 256}})
    return CompactMethod(cfg, [student or TinyStudent(tokenizer)], RunDir.at(tmp_path))


def varied(n: int, teachers: dict[str, int], seed: int = 0, wrong: str | None = None):
    """Synthetic paths whose teachers phrase differently (``wrong``: that teacher states 999)."""
    qs, ps = synthetic_data(n, teachers, seed=seed)
    for p in ps:
        p.text = "Let me see. " * {"a": 0, "b": 1, "c": 2}.get(p.teacher, 0) + p.text
        if p.teacher == wrong:
            p.text = p.text.rsplit("The answer is", 1)[0] + "The answer is 999."
    return qs, ps


def first_batch(m: CompactMethod, qs, ps, per: int = 3):
    return collate(question_batches(m.examples(qs, ps), per)[0], m.students[0])


def by_q(records: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in records:
        out[r["question_id"]] = out.get(r["question_id"], 0.0) + r["weight"]
    return out


def test_symmetric_kl_and_mcon():
    torch.manual_seed(0)
    p, q = torch.log_softmax(torch.randn(3, 7), -1), torch.log_softmax(torch.randn(3, 7), -1)
    assert float(symmetric_kl(p, p)) == pytest.approx(0.0, abs=1e-7)
    assert float(symmetric_kl(p, q)) == pytest.approx(float(symmetric_kl(q, p))) and float(symmetric_kl(p, q)) > 0
    r = torch.log_softmax(torch.randn(4, 7), -1)  # a longer tokenisation: the common length counts
    zero = torch.tensor(0.0)
    got = mcon([p, q, None, r], zero)
    want = [(symmetric_kl(p, q) + symmetric_kl(p, r)) / 2, (symmetric_kl(q, p) + symmetric_kl(q, r)) / 2]
    assert [float(x) for x in got[:2]] == pytest.approx([float(x) for x in want], rel=1e-5)
    assert got[2] is zero and float(got[3]) > 0
    assert all(x is zero for x in mcon([p, None], zero))  # no partner: 0


def test_consensus_graph_and_projections():
    torch.manual_seed(0)
    assert consensus(torch.randn(1, 8), random_projection(8, 0)).tolist() == [0.0]  # one rationale: neutral
    assert consensus(torch.randn(2, 8), random_projection(8, 0)).tolist() == pytest.approx([1.0, 1.0])
    base = torch.randn(8)
    v = torch.stack([base + 0.1 * torch.randn(8) for _ in range(4)] + [-base])  # four agree, one misleads
    s = consensus(v * 3, random_projection(8, 1))
    assert int(s.argmin()) == 4 and float(s.sum()) == pytest.approx(5.0)  # columns of a row-stochastic A
    gpt2 = attention_projection(TinyStudent(train_tokenizer(["a b c"] * 3, vocab_size=300)).model)
    assert gpt2.source == "attention:transformer.h.1.attn"
    q, u = gpt2.project(torch.randn(3, 64))
    assert q.shape == u.shape == (3, 2, 32)  # two heads
    cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2)  # fmt: skip
    llama = attention_projection(LlamaForCausalLM(cfg))
    assert llama.source == "attention:model.layers.1.self_attn"
    q, u = llama.project(torch.randn(3, 16))
    assert q.shape == u.shape == (3, 4, 4)  # key heads repeated to the query heads
    assert attention_projection(torch.nn.Sequential(torch.nn.Linear(4, 4))) is None


def test_information_gain_counts_masked_rises_only():
    a = torch.tensor([1.0, 0.0, 0.0])
    h = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    cos = [0.0, 2**-0.5, 0.0, 1.0]
    all_on = torch.ones(4, dtype=torch.bool)
    assert information_gain(h, a, all_on) == pytest.approx((cos[1] + (cos[3] - cos[2])) / 3)
    assert information_gain(h, a, torch.tensor([True, False, True, False])) == pytest.approx(0.0)  # falls only
    assert math.isnan(information_gain(h[:1], a, all_on[:1]))
    hsic = information_gain(h, a, all_on, "hsic")
    assert 0 <= hsic <= 1 and math.isfinite(hsic)


def test_mcon_is_zero_and_weights_uniform_for_identical_branches(tokenizer, tmp_path):
    qs, ps = synthetic_data(4, {"a": 1, "b": 1, "c": 1}, seed=1)  # the teachers write the same text
    m = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    res = m.compute(first_batch(m, qs, ps), StepInfo(0, 0, 10))
    assert float(res.losses["mcon"]) == pytest.approx(0.0, abs=1e-7)
    assert all(r["L_MCon"] == pytest.approx(0.0, abs=1e-7) for r in res.records["compact_weights"])
    assert all(r["weight"] == pytest.approx(1 / 3) for r in res.records["compact_weights"])  # every signal ties
    other = make(tokenizer, {"warmup_ratio": 0}, tmp_path)
    res = other.compute(first_batch(other, *varied(4, {"a": 1, "b": 1, "c": 1})), StepInfo(0, 0, 10))
    assert float(res.losses["mcon"]) > 1e-6  # different rationales: different answer distributions


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_wrong_branch_answer_distribution_equals_the_closed_rationale_pass(digits, tmp_path, model):
    """A branch stating 999 is scored on its rationale closed with the answer sentence and gold: the cache
    continuation gives the same distributions as a full forward over that closed text."""
    tokenizer = digits
    student = TinyStudent(tokenizer)
    if model == "llama":
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
        student = HFStudent(LlamaForCausalLM(cfg), tokenizer)
    student.model.eval()
    qs, ps = varied(3, {"a": 1, "b": 1}, wrong="b")
    m = make(tokenizer, {"warmup_ratio": 0}, tmp_path, student)
    batch = first_batch(m, qs, ps)
    br = batch_branches(student, batch, m.tokens)
    out = student.forward(batch.inputs[student.name], states=True, cache=True)
    got = answer_logprobs(student, out, br)
    assert continuations(out, br) == sum(b.tokens.answer is None for b in br)  # one per wrong branch
    for b, lp in zip(br, got, strict=True):
        assert lp is not None
        tt = b.tokens
        text = tokenizer.decode(tt.closed_ids) if tt.answer is None else batch.examples[b.row].target
        enc = encode(tokenizer, batch.examples[b.row].prompt, text)
        full = student.forward(collate_encoded([enc], tokenizer.pad_token_id))
        ids = tt.closed_ids if tt.answer is None else tt.ids
        a0, a1 = tt.closed_answer if tt.answer is None else tt.answer
        start = enc.n_prompt + (b.start - int((batch.inputs[student.name].labels[b.row] != -100).nonzero()[0]))
        want = torch.log_softmax(full.logits[0, start + a0 - 1 : start + a1 - 1].float(), -1)
        assert ids[a0:a1] == enc.ids[start + a0 : start + a1]
        assert torch.allclose(lp, want, atol=1e-4), (b.teacher, (lp - want).abs().max())
    assert any(b.tokens.answer is None for b in br)  # the wrong branches were continued


def test_one_training_forward_and_one_short_gold_pass(digits, tmp_path, monkeypatch):
    """No second full pass: the training forward, one no-grad pass over prompt + answer sentence, and a few-token
    continuation per wrong branch."""
    qs, ps = varied(3, {"a": 1, "b": 1}, wrong="b")
    m = make(digits, {"warmup_ratio": 0}, tmp_path)
    batch = first_batch(m, qs, ps)
    student = m.students[0]
    calls: list[tuple[int, int]] = []
    real_forward, real_model = student.forward, student.model.forward

    def spy_forward(inputs, **kw):
        calls.append(tuple(inputs.input_ids.shape))
        return real_forward(inputs, **kw)

    continued: list[int] = []

    def spy_model(*a, **kw):
        if kw.get("past_key_values") is not None:
            continued.append(kw["input_ids"].shape[1])
        return real_model(*a, **kw)

    monkeypatch.setattr(student, "forward", spy_forward)
    monkeypatch.setattr(student.model, "forward", spy_model)
    m.compute(batch, StepInfo(0, 0, 10))
    width = batch.inputs[student.name].input_ids.shape[1]
    assert calls[0] == (6, width) and len(calls) == 2
    assert calls[1][0] == 3 and calls[1][1] < width  # one short row per question
    assert len(continued) == 3 and max(continued) <= 3  # the gold digits after the rationale: a few tokens


def test_sharded_compact_evens_its_forwards_at_zero_weight(digits, tmp_path, monkeypatch):
    """Sharded (FSDP), every process runs as many continuation forwards as the one that needs the most (here: 2
    more than this batch's 3, as if another process needed 5), the extra ones on a one-token stand-in, and a gold
    pass even with no question to pass; the loss and its gradient are those of the unsharded step."""
    import cotdistill.training.methods.compact.paper as paper_mod

    qs, ps = varied(3, {"a": 1, "b": 1}, wrong="b")
    m = make(digits, {"warmup_ratio": 0}, tmp_path)
    batch = first_batch(m, qs, ps)
    student = m.students[0]
    params = [p for p in student.model.parameters() if p.requires_grad]
    ref = m.compute(batch, StepInfo(0, 0, 10)).losses["total"]
    ref_grads = torch.autograd.grad(ref, params)
    shapes: list[tuple[int, ...]] = []
    real_model = student.model.forward

    def spy_model(*a, **kw):
        if kw.get("past_key_values") is None and kw["input_ids"].shape[0] == 1:
            shapes.append(tuple(kw["input_ids"].shape))
        return real_model(*a, **kw)

    monkeypatch.setattr(student.model, "forward", spy_model)
    monkeypatch.setattr(paper_mod, "most_across", lambda n, dev: n + 2)
    m.sharded = True
    total = m.compute(batch, StepInfo(0, 0, 10)).losses["total"]
    assert shapes == [(1, 1), (1, 1)]  # two stand-ins
    assert float(total.detach()) == pytest.approx(float(ref.detach()), abs=1e-6)
    for g, r in zip(torch.autograd.grad(total, params), ref_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-6)
    shapes.clear()
    assert gold_vectors(student, [], m.tokens, sharded=True) == {} and shapes == [(1, 1)]
    assert gold_vectors(student, [], m.tokens) == {} and shapes == [(1, 1)]  # unsharded: no pass


@pytest.mark.parametrize("case", ["ties", "single", "one_branch_question", "wrong_answer", "no_answer_span", "k1"])
def test_no_nan(tokenizer, tmp_path, case):
    teachers = {"solo": 1} if case in ("single", "k1") else {"a": 1, "b": 1}
    qs, ps = varied(4, teachers, seed=4)
    if case == "ties":
        for p in ps:
            p.text = "Same text.\nThe answer is 7."
    elif case in ("wrong_answer", "no_answer_span"):
        for p in ps:
            if p.teacher == "b":
                p.text = "I do not know." if case == "wrong_answer" else "<think>I was cut off mid-thought"
    elif case == "one_branch_question":
        ps = [p for p in ps if not (p.question_id == "q0" and p.teacher == "b")]
    options = {"warmup_ratio": 0} if case != "k1" else {"warmup_ratio": 0, "mi_estimator": "hsic"}
    m = make(tokenizer, options, tmp_path)
    res = m.compute(first_batch(m, qs, ps, 4), StepInfo(0, 0, 10))
    recs = res.records["compact_weights"]
    assert all(math.isfinite(r["weight"]) for r in recs)
    assert all(v == pytest.approx(1.0) for v in by_q(recs).values())
    assert torch.isfinite(res.losses["total"]) and all(math.isfinite(v) for v in res.scalars.values())
    res.losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in m.students[0].model.parameters() if p.grad is not None)
    if case in ("single", "k1"):
        assert all(r["weight"] == 1.0 and r["L_MCon"] is None for r in recs)
    if case == "no_answer_span":  # neither a gold span nor a closable rationale: no P_ans, its partner none either
        assert all(r["L_MCon"] is None for r in recs)
    if case == "wrong_answer":  # no gold in it, but the rationale closed with the answer sentence and gold scores
        assert all(r["L_MCon"] is not None and r["L_MCon"] > 0 for r in recs)


def test_switches_remove_each_signal_and_its_cost(tokenizer, tmp_path, monkeypatch):
    qs, ps = varied(3, {"a": 1, "b": 1})
    m = make(tokenizer, {"use_mi": False, "use_cons": False, "use_mcon": False}, tmp_path)
    monkeypatch.setattr(paper_mod, "gold_vectors", lambda *a: pytest.fail("the gold pass ran"))
    res = m.compute(first_batch(m, qs, ps), StepInfo(5, 0, 10))
    recs = res.records["compact_weights"]
    assert all(r["S_MI"] is None and r["S_cons"] is None and r["L_MCon"] is None for r in recs)
    assert all(r["S_PPL"] is not None for r in recs) and "mcon" not in res.losses
    monkeypatch.undo()
    only_ppl = make(tokenizer, {"beta1": 0, "beta2": 0, "lambda_mcon": 0}, tmp_path, m.students[0])
    with torch.no_grad():
        again = only_ppl.compute(first_batch(m, qs, ps), StepInfo(5, 0, 10)).records["compact_weights"]
    assert [r["weight"] for r in again] == pytest.approx([r["weight"] for r in recs])  # betas 0 = switched off


def test_teacher_share_is_split_over_its_branches(tokenizer, tmp_path):
    """Teacher b writes two branches per question, a and c one: in warm-up each teacher has 1/3, and the logged
    weight is the teacher's real share of the gradient (d total / d L_branch summed over its branches)."""
    qs, ps = varied(2, {"a": 1, "b": 2, "c": 1})
    m = make(tokenizer, {"lambda_mcon": 0}, tmp_path)
    batch = first_batch(m, qs, ps, 2)
    student = m.students[0]
    captured = {}
    real = student.forward

    def spy(inputs, **kw):
        out = real(inputs, **kw)
        if out.loss.requires_grad:
            out.loss.retain_grad()
            captured["loss"] = out.loss
        return out

    student.forward = spy
    for step in (0, 5):  # warm-up (uniform) and fused weights
        res = m.compute(batch, StepInfo(step, 0, 10))
        res.losses["total"].backward()
        grad = captured["loss"].grad.double() * 2  # B = 2 N_q: the per-question share
        share: dict[tuple[str, str], float] = {}
        for ex, g in zip(batch.examples, grad.tolist(), strict=True):
            share[(ex.question.id, ex.path.teacher)] = share.get((ex.question.id, ex.path.teacher), 0.0) + g
        logged = {(r["question_id"], r["teacher"]): r["weight"] for r in res.records["compact_weights"]}
        assert share == pytest.approx(logged)
        if step == 0:
            assert list(logged.values()) == pytest.approx([1 / 3] * 6)
        else:
            assert max(abs(w - 1 / 3) for w in logged.values()) > 1e-3
