"""QR-Distill's peer teaching (issue 20): identical students agree exactly (acceptance 4), the frozen maps are on
one scale, the competence target is per byte, and the competence regressors beat a bias-only model where
competence differs between paths."""

from __future__ import annotations

import copy

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
    fit_projections,
    masked_softmax,
    per_byte,
    resolve_projection,
)
from qr_students import (
    TinyStudent,
    make_batch,
    make_model,
    make_tokenizer,
    planted_data,
    warmed_planted_pair,
)


def _method(tmp_path, students, **options) -> QRDistill:
    cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": options})
    return QRDistill(cfg, students, RunDir.at(tmp_path))


def _copies() -> list[TinyStudent]:
    tok = make_tokenizer(300)
    a = TinyStudent("a", make_model("gpt2", tok, seed=0, d=32), tok)
    return [a, TinyStudent("b", copy.deepcopy(a.model), tok)]


@pytest.mark.parametrize("projection", ["auto", "shared", "fitted"])
def test_two_copies_of_one_model_have_zero_mutual_loss_at_step_0(tmp_path, projection):
    """Acceptance 4: hidden mode, every path to both copies (routing off) and routed (default): L_mutual = 0."""
    questions, paths = planted_data(12)
    for routing in (False, True):
        students = _copies()
        m = _method(tmp_path, students, routing=routing, projection=projection)
        ex = m.examples(questions, paths)
        out = m.compute(make_batch(students, ex[:24]), StepInfo(0, 0, 1))
        assert "mutual" in out.losses and out.records.get("competence")  # co-routed paths exist
        assert float(out.losses["mutual"].detach()) == 0.0


def test_independent_random_projections_make_copies_disagree(tmp_path):
    """The old construction (one random orthogonal matrix per student): two copies already disagree."""
    questions, paths = planted_data(12)
    students = _copies()
    m = _method(tmp_path, students, routing=False, projection="random")
    out = m.compute(make_batch(students, m.examples(questions, paths)[:24]), StepInfo(0, 0, 1))
    assert float(out.losses["mutual"].detach()) > 0.5


def test_projection_modes_resolve_and_check_sizes():
    assert resolve_projection("auto", [64, 64]) == "shared"
    assert resolve_projection("auto", [64, 96]) == "fitted"
    with pytest.raises(ConfigError, match="one hidden size"):
        resolve_projection("shared", [64, 96])
    space = PeerSpace([16, 16], dim=8, projection="shared")
    assert torch.equal(space.proj_0, space.proj_1) and space.needs_calibration
    assert not PeerSpace([16, 24], dim=8, projection="random").needs_calibration


def test_fitted_maps_put_different_students_on_one_scale_and_align_them():
    """Two students whose states are different linear images of one signal (plus noise): the fitted maps give
    E||z||^2 = 1 on the batch for both, and the two z agree far better than independent random maps would."""
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(200, 6, generator=gen)
    xa = signal @ torch.randn(6, 20, generator=gen) * 5.0 + 0.1 * torch.randn(200, 20, generator=gen)
    xb = signal @ torch.randn(6, 36, generator=gen) + 0.1 * torch.randn(200, 36, generator=gen)
    space = PeerSpace([20, 36], dim=6, projection="fitted")
    space.calibrate([xa, xb])
    za, zb = space.project(0, xa), space.project(1, xb)
    assert float(za.pow(2).sum(-1).mean()) == pytest.approx(1.0, rel=1e-3)
    assert float(zb.pow(2).sum(-1).mean()) == pytest.approx(1.0, rel=1e-3)
    assert float((za - zb).pow(2).sum(-1).mean()) < 0.05
    rand = PeerSpace([20, 36], dim=6, projection="random")
    ra, rb = rand.project(0, xa), rand.project(1, xb)
    rel = (ra / ra.norm(dim=-1).mean() - rb / rb.norm(dim=-1).mean()).pow(2).sum(-1).mean()
    assert float(rel) > 0.5
    same = fit_projections([xa - xa.mean(0), xa - xa.mean(0)], dim=6)
    assert torch.equal(same[0], same[1])


def test_competence_target_is_per_byte():
    """One text, two tokenisations (8 vs 20 tokens): per token the finer one looks 2.5x better, per byte the
    same; only a real difference per byte moves the target."""
    n_bytes = torch.tensor([40])
    coarse = per_byte(torch.tensor([2.5]), torch.tensor([8]), n_bytes)  # 20 nats over 40 bytes
    fine = per_byte(torch.tensor([1.0]), torch.tensor([20]), n_bytes)  # 20 nats over 40 bytes
    assert float(coarse) == pytest.approx(0.5) and float(fine) == pytest.approx(0.5)
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert competence_target(torch.stack([coarse, fine], 1), mask).tolist() == [[0.5, 0.5]]
    per_token = competence_target(torch.tensor([[2.5, 1.0]]), mask)
    assert float(per_token[0, 1]) > 0.8  # what the token-mean target said


def test_competence_regressors_beat_a_bias_only_model_where_competence_differs(tmp_path):
    """The planted pair (student 0 warmed up on cot, student 1 on program): which student has the lower loss per
    byte depends on the path. Trained on half the paths at the default module_lr (on the frozen shared-space
    vectors, as in training), the regressors predict the other half's targets far better than the best constant."""
    questions, paths, students = warmed_planted_pair()
    m = _method(tmp_path, students, routing=False)
    ex = m.examples(questions, paths)
    batch = make_batch(students, ex)
    with torch.no_grad():
        outs = [st.forward(batch.inputs[st.name], hidden=True) for st in students]
    n_bytes = torch.tensor([len(e.target.encode()) for e in ex])
    pb = torch.stack([per_byte(o.loss, (batch.inputs[st.name].labels != -100).sum(1), n_bytes)
                      for o, st in zip(outs, students, strict=True)], dim=1)  # fmt: skip
    z = torch.stack([m.peer_space.project(s, outs[s].hidden) for s in range(2)], dim=1)
    mask = torch.ones(len(ex), 2, dtype=torch.bool)
    target = competence_target(pb, mask, m.opts.competence_temperature)
    assert float(target[:, 0].std()) > 0.3  # competence differs between paths
    perm = torch.randperm(len(ex), generator=torch.Generator().manual_seed(0))
    train, test = perm[: len(ex) // 2], perm[len(ex) // 2 :]
    opt = torch.optim.AdamW(m.peer_space.parameters(), lr=m.module_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):
        idx = train[torch.randperm(len(train), generator=gen)[:12]]
        loss = competence_loss(m.peer_space.competence_logits(z[idx]), target[idx], mask[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    def kl(p: torch.Tensor, q: torch.Tensor) -> float:
        return float((p * (p.clamp_min(1e-9).log() - q.clamp_min(1e-9).log())).sum(1).mean())

    with torch.no_grad():
        gamma = masked_softmax(m.peer_space.competence_logits(z[test]), mask[test])
    bias_only = target[train].mean(0, keepdim=True).expand(len(test), 2)  # the best constant on the train half
    assert kl(target[test], gamma) < 0.25 * kl(target[test], bias_only)


def test_the_calibration_batch_holds_only_paths_within_max_length(tmp_path):
    """A path longer than train.max_length (which training drops) is never drawn for calibration: one would pad
    its whole chunk to its length. The batch still has k paths, the same for every student."""
    from cotdistill.students.encoding import encode
    from cotdistill.training.methods.qr_distill.inputs import calibration_states

    questions, paths = planted_data(12)
    for p in paths[::3]:
        p.text = " ".join([p.text] * 3)  # every vanilla path becomes longer than the limit
    students = _copies()
    examples = _method(tmp_path, students, routing=False).examples(questions, paths)
    lengths = [len(encode(students[0].tokenizer, e.prompt, e.target)) for e in examples]
    limit = sorted(lengths)[len(lengths) // 2]
    assert max(lengths) > 1.5 * limit
    widths: list[int] = []

    def spy(forward):
        def wrapped(inputs, hidden=False):
            widths.append(inputs.input_ids.shape[1])
            return forward(inputs, hidden)

        return wrapped

    for st in students:
        st.forward = spy(st.forward)
    states = calibration_states(students, examples, k=8, seed=0, max_length=limit)
    assert [tuple(s.shape) for s in states] == [(8, 32), (8, 32)] and max(widths) <= limit
    assert torch.allclose(states[0], states[1])  # one batch, in one order, for both copies
