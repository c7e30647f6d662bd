"""QR-Distill: router, gates, entropy, fallback, peer teaching, competence regressors, the method on tiny students."""

from __future__ import annotations

import pytest
import torch

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError
from cotdistill.rundir import RunDir
from cotdistill.training.methods.base import StepInfo
from cotdistill.training.methods.qr_distill.method import QRDistill
from cotdistill.training.methods.qr_distill.peer import (
    PeerSpace,
    competence_loss,
    competence_target,
    masked_softmax,
    mutual_hidden_loss,
    mutual_logits_loss,
)
from cotdistill.training.methods.qr_distill.router import Router, gate_entropy, gated_student_loss, sample_gates
from qr_students import STYLES, TinyStudent, make_batch, make_model, make_tokenizer, toy_data

# ----------------------------------------------------------------------------- router, gates, entropy


def test_router_learns_through_gated_losses():
    """One step on the gate-weighted loss: the gate gradient is non-zero and the router's parameters move."""
    torch.manual_seed(0)
    router = Router(16, 2, seed=0)
    emb = torch.randn(8, 16)
    gen = torch.Generator().manual_seed(0)
    g = sample_gates(router(emb), tau=1.0, generator=gen)
    g.gates.retain_grad()
    ce = torch.tensor([[0.5, 3.0], [2.5, 0.7], [0.4, 2.0], [3.0, 0.2], [1.0, 1.5], [2.0, 0.9], [0.3, 2.2], [2.8, 0.6]])
    loss = sum(gated_student_loss(ce[:, s], g.gates[:, s]) for s in range(2))
    before = [p.detach().clone() for p in router.parameters()]
    opt = torch.optim.SGD(router.parameters(), lr=0.5)
    loss.backward()
    assert g.gates.grad is not None and g.gates.grad.abs().sum() > 0
    assert all(p.grad is not None for p in router.parameters())
    assert sum(float(p.grad.abs().sum()) for p in router.parameters()) > 0
    opt.step()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, router.parameters(), strict=True))


def test_router_learns_to_route_paths_to_the_student_they_suit():
    """Many steps: paths cheap for student 0 open its gate more, paths cheap for student 1 open theirs."""
    torch.manual_seed(0)
    router = Router(8, 2, seed=0)
    emb = torch.randn(32, 8)
    kind = (emb[:, 0] > 0).long()  # which student each path suits
    ce = torch.where(torch.nn.functional.one_hot(kind, 2).bool(), torch.tensor(0.5), torch.tensor(2.5))
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(router.parameters(), lr=0.05)
    for _ in range(60):
        g = sample_gates(router(emb), generator=gen)
        loss = sum(gated_student_loss(ce[:, s], g.gates[:, s]) for s in range(2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    prob = torch.sigmoid(router(emb)).detach()
    suits = prob[torch.arange(32), kind].mean()
    other = prob[torch.arange(32), 1 - kind].mean()
    assert suits > other + 0.2


def test_gates_are_binary_forward_and_differentiable():
    logits = torch.randn(50, 3, requires_grad=True)
    g = sample_gates(logits, generator=torch.Generator().manual_seed(0))
    assert set(g.gates.detach().unique().tolist()) <= {0.0, 1.0}
    g.gates.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gate_noise_is_seeded():
    logits = torch.zeros(40, 2)
    a = sample_gates(logits, generator=torch.Generator().manual_seed(5)).gates
    b = sample_gates(logits, generator=torch.Generator().manual_seed(5)).gates
    c = sample_gates(logits, generator=torch.Generator().manual_seed(6)).gates
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_entropy_term_raises_entropy():
    """Minimising -lambda1 * H(gbar) from a router that opens almost every gate moves gbar towards 1/2."""
    router = Router(8, 2, seed=0)
    with torch.no_grad():
        router.net[2].bias.fill_(3.0)
    emb = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(router.parameters(), lr=0.5)
    gen = torch.Generator().manual_seed(0)

    def expected_entropy() -> float:
        with torch.no_grad():
            return float(gate_entropy(torch.sigmoid(router(emb))))

    h0 = expected_entropy()
    for _ in range(30):
        g = sample_gates(router(emb), generator=gen)
        loss = -0.01 * gate_entropy(g.gates) * 100
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert expected_entropy() > h0 + 0.05
    # the opposite sign would lower it: the term's sign matters
    assert float(gate_entropy(torch.tensor([0.5]))) > float(gate_entropy(torch.tensor([0.95])))


def test_entropy_reads_the_routers_decisions_not_the_fallback():
    """A router that shuts every gate (each path then forced to one of two students) is pushed to open gates.

    Counted after the fallback, that state has gbar = 1/2 and maximal entropy (zero gradient): the regulariser
    would hold the router there. Counted on the router's own sampled decisions, gbar ~ 0 and the gradient opens.
    """
    logits = torch.full((32, 2), -4.0, requires_grad=True)
    g = sample_gates(logits, generator=torch.Generator().manual_seed(0))
    assert float(g.gates.detach().mean()) == pytest.approx(0.5)  # every path fell back to one student
    assert float(g.decisions.detach().mean()) < 0.1
    (-gate_entropy(g.decisions)).backward()
    assert logits.grad is not None and float(logits.grad.sum()) < 0  # descent raises the logits
    post = torch.full((32, 2), -4.0, requires_grad=True)
    (-gate_entropy(sample_gates(post, generator=torch.Generator().manual_seed(0)).gates)).backward()
    assert post.grad is not None and abs(float(post.grad.sum())) < 1e-4  # flat: nothing would push back


def test_path_with_no_open_gate_falls_back_to_the_largest_noisy_score():
    """The fallback takes argmax(logit + the gate's own noise), not argmax(logit): a lower logit can win."""
    logits = torch.tensor([[-30.0, -20.0, -25.0], [-30.0, -31.0, -22.0], [30.0, -30.0, 30.0]], requires_grad=True)
    u = torch.full((3, 6), 0.5)
    u[0, :3] = torch.tensor([0.999, 0.001, 0.5])  # noise +6.9, -6.9, 0: noisy scores -23.1, -26.9, -25.0
    g = sample_gates(logits, uniform=u)
    hard = g.hard
    assert hard[0].tolist() == [True, False, False]  # not the top logit (index 1)
    assert hard[1].tolist() == [False, False, True]
    assert hard[2].tolist() == [True, False, True]
    assert g.fallback.tolist() == [True, True, False]
    assert g.own[0].sum() == 0 and g.own[2].sum() == 2  # the router's own decisions, before the fallback
    g.gates[0, 0].backward()  # the forced gate is still straight-through
    assert logits.grad is not None
    no_fb = sample_gates(logits.detach(), uniform=u, fallback=False)
    assert no_fb.hard[0].sum() == 0 and not no_fb.fallback.any()


def test_fallback_ties_are_not_broken_by_index():
    """Equal logits and equal noise on every student: the forced student is drawn at random, ~1/S each."""
    n = 600
    logits = torch.full((n, 3), -40.0)
    u = torch.rand(n, 6, generator=torch.Generator().manual_seed(0))
    u[:, :3] = 0.5  # identical noise: exact ties
    g = sample_gates(logits, uniform=u)
    share = g.hard.float().mean(0)
    assert bool(g.fallback.all()) and torch.allclose(share, torch.full((3,), 1 / 3), atol=0.06)


def test_noisy_fallback_spreads_paths_over_tied_students():
    """Nearly tied logits (the issue's demo: argmax sent 1004 of 1109 fallbacks to one student): the noisy score
    splits the fallbacks about evenly."""
    n = 2000
    logits = torch.stack([torch.full((n,), -3.0), torch.full((n,), -3.01)], dim=1)
    g = sample_gates(logits, generator=torch.Generator().manual_seed(0))
    forced = g.hard[g.fallback].float().mean(0)
    assert int(g.fallback.sum()) > 1000 and abs(float(forced[0]) - 0.5) < 0.05


def test_path_noise_is_a_function_of_seed_step_and_path():
    from cotdistill.training.methods.qr_distill.router import path_uniforms

    a = path_uniforms(["p1", "p2", "p3"], 4, seed=0, step=5)
    b = path_uniforms(["p3", "p1"], 4, seed=0, step=5)  # another batch, another order (another process)
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(a[0], a[1])  # paths differ
    assert not torch.equal(a, path_uniforms(["p1", "p2", "p3"], 4, seed=0, step=6))
    assert not torch.equal(a, path_uniforms(["p1", "p2", "p3"], 4, seed=1, step=5))
    assert float(a.min()) > 0 and float(a.max()) < 1


def test_gated_loss_denominator():
    ce = torch.tensor([1.0, 2.0, 4.0])
    assert float(gated_student_loss(ce, torch.tensor([1.0, 0.0, 1.0]))) == pytest.approx(2.5)
    assert float(gated_student_loss(ce, torch.zeros(3))) == 0.0


# ----------------------------------------------------------------------------- peer teaching


def test_random_projections_are_orthogonal_fixed_and_seeded():
    a = PeerSpace([32, 64, 16], dim=24, seed=3, projection="random")
    b = PeerSpace([32, 64, 16], dim=24, seed=3, projection="random")
    for s, h in enumerate([32, 64, 16]):
        p = getattr(a, f"proj_{s}")
        assert p.shape == (24, h)
        gram = p @ p.T if 24 <= h else p.T @ p
        assert torch.allclose(gram, torch.eye(min(24, h)), atol=1e-5)
        assert torch.equal(p, getattr(b, f"proj_{s}"))
    names = {n for n, _ in a.named_parameters()}
    assert not any(n.startswith("proj_") for n in names)  # never trained
    assert {"proj_0", "proj_1", "proj_2"} <= set(a.state_dict())  # saved with the module


def test_mutual_loss_is_zero_when_students_agree():
    z = torch.randn(5, 1, 8).repeat(1, 3, 1)
    mask = torch.ones(5, 3, dtype=torch.bool)
    gamma = masked_softmax(torch.randn(5, 3), mask)
    assert float(mutual_hidden_loss(z, gamma, mask)) == pytest.approx(0.0, abs=1e-10)
    z2 = z.detach().clone()
    z2[:, 1] += 1.0
    assert float(mutual_hidden_loss(z2, gamma, mask)) > 0.1
    logits = torch.randn(4, 6, 11)
    labels = torch.randint(0, 11, (4, 6))
    labels[:, :2] = -100
    m2 = torch.ones(4, 2, dtype=torch.bool)
    g2 = masked_softmax(torch.randn(4, 2), m2)
    assert float(mutual_logits_loss([logits, logits.clone()], labels, g2, m2)) == pytest.approx(0.0, abs=1e-6)
    assert float(mutual_logits_loss([logits, torch.randn(4, 6, 11)], labels, g2, m2)) > 0.01


def test_mutual_loss_ignores_students_that_did_not_take_the_path():
    z = torch.randn(3, 3, 4)
    mask = torch.tensor([[True, True, False]] * 3)
    z[:, 1] = z[:, 0]
    gamma = masked_softmax(torch.zeros(3, 3), mask)
    assert float(mutual_hidden_loss(z, gamma, mask)) == pytest.approx(0.0, abs=1e-10)


def test_competence_regressors_move_towards_lower_loss_student():
    torch.manual_seed(0)
    space = PeerSpace([16, 24], dim=8, seed=0)
    z = torch.randn(20, 2, 8)
    ce = torch.stack([torch.full((20,), 0.5), torch.full((20,), 2.0)], dim=1)  # student 0 is better
    mask = torch.ones(20, 2, dtype=torch.bool)
    target = competence_target(ce, mask)
    assert float(target[0, 0]) > 0.5
    opt = torch.optim.Adam(space.parameters(), lr=0.05)
    g0 = float(masked_softmax(space.competence_logits(z), mask)[:, 0].mean().detach())
    for _ in range(50):
        loss = competence_loss(space.competence_logits(z), target, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    g1 = float(masked_softmax(space.competence_logits(z), mask)[:, 0].mean().detach())
    assert g0 == pytest.approx(0.5)
    assert g1 > 0.7
    assert g1 == pytest.approx(float(target[0, 0]), abs=0.05)


# ----------------------------------------------------------------------------- the method on tiny students


def _students(kinds: list[str], shared_tok: bool = False) -> list[TinyStudent]:
    tok0 = make_tokenizer(300)
    out = []
    for i, kind in enumerate(kinds):
        tok = tok0 if shared_tok or i == 0 else make_tokenizer(300 + 40 * i)
        out.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=i, d=32 + 16 * i), tok))
    return out


def _method(tmp_path, students, **options) -> QRDistill:
    cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": options})
    return QRDistill(cfg, students, RunDir.at(tmp_path))


def _step(method: QRDistill, students, examples, steps: int = 1, lr: float = 1e-2):
    params = [p for s in students for p in s.model.parameters()]
    params += [p for m in method.modules().values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr)
    out = None
    for i in range(steps):
        out = method.compute(make_batch(students, examples), StepInfo(step=i, epoch=0, total_steps=steps))
        opt.zero_grad()
        out.losses["total"].backward()
        opt.step()
    return out


@pytest.fixture(scope="module")
def toy():
    return toy_data(6)


def test_method_two_tokenizers_end_to_end(tmp_path, toy):
    """A GPT-2 and a Llama student with different tokenizers: losses, routing logs, router and regressors train."""
    questions, paths = toy
    students = _students(["gpt2", "llama"])
    assert students[0].tokenizer.get_vocab() != students[1].tokenizer.get_vocab()
    m = _method(tmp_path, students)
    ex = m.examples(questions, paths)
    assert len(ex) == 16  # 18 paths, 2 not kept
    assert any((tmp_path / "cache" / "embeddings").iterdir())  # shared with the filter's consensus cache
    router_before = [p.detach().clone() for p in m.router.parameters()]
    comp_before = m.peer_space.competence.detach().clone()
    out = _step(m, students, ex[:8], steps=3)
    assert {"ce/s0-gpt2", "ce/s1-llama", "entropy", "mutual", "competence", "total"} <= set(out.losses)
    assert all(torch.isfinite(v) for v in out.losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(router_before, m.router.parameters(), strict=True))
    assert not torch.equal(comp_before, m.peer_space.competence.detach())
    recs = out.records["routing"]
    assert len(recs) == 8 * 2
    assert {"question_id", "path_id", "teacher", "style", "student", "gate", "prob", "fallback"} <= set(recs[0])
    by_path: dict[str, int] = {}
    for r in recs:
        by_path[r["path_id"]] = by_path.get(r["path_id"], 0) + r["gate"]
    assert all(v >= 1 for v in by_path.values())  # no path wasted
    rates = [r for r in m.on_epoch_end(0)["routing_rates"] if r["kind"] == "style"]
    assert {r["style"] for r in rates} <= set(STYLES) and all(0.0 <= r["rate"] <= 1.0 for r in rates)
    assert m.on_epoch_end(1) == {}  # counters reset per epoch


def test_method_three_students(tmp_path, toy):
    questions, paths = toy
    students = _students(["gpt2", "llama", "gpt2"])
    m = _method(tmp_path, students)
    ex = m.examples(questions, paths)
    out = _step(m, students, ex[:9], steps=2)
    assert {f"ce/{s.name}" for s in students} <= set(out.losses)
    assert len(out.records["routing"]) == 9 * 3
    assert torch.isfinite(out.losses["total"])


def test_split_forward_matches_full_forward_gradients(tmp_path, toy):
    """Open paths with grad + closed paths without: the students' gradients equal one full forward's."""
    questions, paths = toy
    students = _students(["gpt2", "llama"])
    m = _method(tmp_path, students, peer=False)
    ex = m.examples(questions, paths)[:8]
    batch = make_batch(students, ex)
    out = m.compute(batch, StepInfo(0, 0, 1))
    out.losses["total"].backward()
    split = [p.grad.clone() for p in students[0].model.parameters() if p.grad is not None]
    gates = m._gates(batch, True, 0)  # the same draws: a pure function of (seed, step, path)
    for p in students[0].model.parameters():
        p.grad = None
    full = students[0].forward(batch.inputs[students[0].name]).loss
    gated_student_loss(full, gates.gates[:, 0].detach()).backward()
    ref = [p.grad.clone() for p in students[0].model.parameters() if p.grad is not None]
    assert len(split) == len(ref)
    for a, b in zip(split, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_ablations(tmp_path, toy):
    questions, paths = toy
    students = _students(["gpt2", "llama"])
    m = _method(tmp_path, students, filter=False, routing=False, peer=False)
    ex = m.examples(questions, paths)
    assert len(ex) == 18 and m.router is None and m.modules() == {}
    out = _step(m, students, ex[:6])
    assert all(r["gate"] == 1 for r in out.records["routing"])
    assert "entropy" not in out.losses and "mutual" not in out.losses


def test_logits_mode_needs_a_shared_tokenizer(tmp_path, toy):
    with pytest.raises(ConfigError, match="share a tokenizer"):
        _method(tmp_path, _students(["gpt2", "llama"]), peer_mode="logits")
    questions, paths = toy
    students = _students(["gpt2", "llama"], shared_tok=True)
    m = _method(tmp_path, students, peer_mode="logits", routing=False)
    out = _step(m, students, m.examples(questions, paths)[:6])
    assert float(out.losses["mutual"].detach()) > 0


def test_gates_need_no_state_and_diagnostics_resume(tmp_path, toy):
    """A fresh method draws the same gates for the same step (nothing to restore); the epoch's diagnostics are
    in the state and come back."""
    questions, paths = toy
    students = _students(["gpt2", "llama"])
    m = _method(tmp_path, students, peer=False)
    ex = m.examples(questions, paths)[:8]
    batch = make_batch(students, ex)
    m.compute(batch, StepInfo(0, 0, 2))
    state = m.state_dict()
    m2 = _method(tmp_path, students, peer=False)
    m2.examples(questions, paths)  # embeddings come from the run's cache
    m2.router.load_state_dict(m.router.state_dict())
    assert torch.equal(m2._gates(batch, True, 3).hard, m._gates(batch, True, 3).hard)
    assert not torch.equal(m._gates(batch, True, 3).hard, m._gates(batch, True, 4).hard)
    m2.load_state_dict(state)
    assert m2.on_epoch_end(0) == m.on_epoch_end(0) != {}


def test_bad_options_are_config_errors(tmp_path):
    from cotdistill.config import load_config

    with pytest.raises(ConfigError, match="options.tau: Input should be greater than 0"):
        load_config(None, ["train.method=qr-distill", "train.options.tau=0"])
    with pytest.raises(ConfigError, match="options.lamda1: unknown option for method 'qr-distill'.*lambda1"):
        load_config(None, ["train.method=qr-distill", "train.options.lamda1=0.1"])
    with pytest.raises(ConfigError, match="S >= 2"):
        _method(tmp_path, _students(["gpt2"]))


def test_cached_closed_losses_skip_the_extra_forward(tmp_path, toy):
    """closed_loss=cached: one forward per student per step, the last seen loss stands in for closed paths."""
    questions, paths = toy
    students = _students(["gpt2", "llama"])
    calls = {"n": 0}
    for st in students:
        orig = st.forward

        def counted(inputs, hidden=False, _orig=orig):
            calls["n"] += 1
            return _orig(inputs, hidden)

        st.forward = counted  # type: ignore[method-assign]
    m = _method(tmp_path, students, closed_loss="cached", peer=False)
    ex = m.examples(questions, paths)[:8]
    batch = make_batch(students, ex)
    out = m.compute(batch, StepInfo(0, 0, 1))
    assert calls["n"] == 2  # no no-grad forward on closed paths
    hard = torch.tensor([[r["gate"] for r in out.records["routing"][i * 2 : i * 2 + 2]] for i in range(8)])
    assert len(m._last_ce) == int(hard.sum())  # every open (path, student) loss remembered
    out.losses["total"].backward()
    assert m.router.net[0].weight.grad is not None and m.router.net[0].weight.grad.abs().sum() > 0
    state = m.state_dict()
    m2 = _method(tmp_path, students, closed_loss="cached", peer=False)
    m2.load_state_dict(state)
    assert m2._last_ce == m._last_ce


def test_empty_student_is_not_pushed_further_shut():
    """With no open gate, the gate gradient is centred (some gates pulled open), not +CE on every gate."""
    from cotdistill.training.methods.qr_distill.router import gated_student_loss

    ce = torch.tensor([0.5, 1.0, 2.0, 4.0])
    logits = torch.full((4,), -3.0, requires_grad=True)
    soft = torch.sigmoid(logits)
    gate = (soft > 0.5).float() + (soft - soft.detach())  # all closed, straight-through
    loss = gated_student_loss(ce, gate)
    assert loss.item() == 0.0  # METHODS.md's value: nothing routed, nothing learned
    loss.backward()
    g = logits.grad
    assert (g < 0).any() and (g > 0).any()  # low-loss paths pulled open, high-loss ones pushed shut
    assert abs(float((g / (soft * (1 - soft)).detach()).sum())) < 1e-5  # centred on the student's mean loss


def test_gated_loss_value_and_gradient_match_the_plain_form_when_gates_are_open():
    """Value and the students' gradient are METHODS.md's; with the 'routed' baseline the gate gradient is the
    exact derivative of the gated mean, with the default batch baseline it is CE_j - mean(CE) over n."""
    from cotdistill.training.methods.qr_distill.router import gated_student_loss, router_signal

    ce0 = torch.tensor([0.5, 1.0, 2.0, 4.0])
    for pattern in ([1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]):
        ce1, ce2 = ce0.clone().requires_grad_(True), ce0.clone().requires_grad_(True)
        g1 = torch.tensor(pattern, dtype=torch.float32, requires_grad=True)
        g2 = torch.tensor(pattern, dtype=torch.float32, requires_grad=True)
        n = g1.detach().sum()
        routed = (g1.detach() * ce0).sum() / n
        ours = gated_student_loss(ce1, g1, signal=router_signal(ce0, routed, torch.ones(()), float(n)))
        plain = (g2 * ce2).sum() / g2.sum().clamp(min=1.0)
        ours.backward()
        plain.backward()
        assert torch.allclose(ours, plain) and torch.allclose(g1.grad, g2.grad) and torch.allclose(ce1.grad, ce2.grad)
        g3 = torch.tensor(pattern, dtype=torch.float32, requires_grad=True)
        gated_student_loss(ce0, g3).backward()
        assert torch.allclose(g3.grad, (ce0 - ce0.mean()) / n)


def test_without_filter_keeps_the_path_budget(tmp_path, toy):
    """'w/o QF' under ``train.max_paths`` trains on each question's first paths whatever their quality: as many
    paths as the filtered method gets, not every rejected path on top; a rejected path that comes first is one."""
    questions, paths = toy
    q0 = [p for p in paths if p.question_id == "q0"]  # vanilla, cot, program (rejected)
    order = [q0[2], q0[0], q0[1], *[p for p in paths if p.question_id != "q0"]]
    students = _students(["gpt2", "llama"])

    def ids(**train) -> list[str]:
        opts = {"filter": False, "routing": False, "peer": False}
        cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": opts, **train})
        return [e.path.id for e in QRDistill(cfg, students, RunDir.at(tmp_path)).examples(questions, order)]

    capped = ids(max_paths=1)
    assert len(capped) == 6 and capped[0] == "q0|t|program|0" and not any("q0|t|vanilla" in i for i in capped)
    assert all(i.split("|")[2] == "vanilla" for i in capped[1:])
    assert len(ids()) == 18  # no budget: every path
