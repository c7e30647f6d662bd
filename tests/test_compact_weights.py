"""COMPACT's weight computation (METHODS.md §2): z-scores, fusion, c_min cut, warm-up, EMA, answer spans."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cotdistill.errors import ConfigError
from cotdistill.training.methods.compact.options import CompactOptions
from cotdistill.training.methods.compact.weights import (
    DifficultyEMA,
    adaptability,
    branch_softmax,
    fuse,
    in_warmup,
    span_mean_logprob,
    split_over_branches,
    teacher_shares,
    weight_entropy,
    zscore,
)

NAN = math.nan


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_zscore_basic_ties_single_and_missing():
    z = zscore(t(1.0, 2.0, 3.0))
    assert torch.allclose(z, t(-1.2247449, 0.0, 1.2247449), atol=1e-6)
    assert torch.equal(zscore(t(0.7, 0.7, 0.7)), t(0.0, 0.0, 0.0))
    assert torch.equal(zscore(t(4.2)), t(0.0))
    z = zscore(t(1.0, NAN, 3.0))
    assert z[1] == 0 and z[0] == -1 and z[2] == 1


def test_options_defaults_and_unknown_key():
    from cotdistill.config import load_config

    o = CompactOptions()
    assert (o.lambda_c, o.lambda_a, o.lambda_d, o.tau, o.c_min, o.ema_mu) == (1, 1, 1, 1, 0.2, 0.9)
    assert (o.variant, o.beta1, o.beta2, o.beta3, o.lambda_mcon) == ("paper", 1, 1, 1, 0.1)
    with pytest.raises(ConfigError, match="c_min: not an option of variant 'paper'"):
        load_config(None, ["train.method=compact", "train.options.c_min=0"])
    with pytest.raises(ConfigError, match="beta1: not an option of variant 'v1'"):
        load_config(None, ["train.method=compact", "train.options.variant=v1", "train.options.beta1=0"])
    with pytest.raises(ConfigError, match="options.lamda_c: unknown option for method 'compact'"):
        load_config(None, ["train.method=compact", "train.options.lamda_c=1"])
    with pytest.raises(ConfigError, match="options.tau"):
        load_config(None, ["train.method=compact", "train.options.tau=0"])


def test_each_signal_moves_weight_the_right_way():
    o = CompactOptions()
    flat = t(0.5, 0.5, 0.5)
    w = fuse(t(0.9, 0.5, 0.3), flat, flat, o).weights
    assert w[0] > w[1] > w[2]
    w = fuse(flat, t(2.0, 0.0, -1.0), flat, o).weights
    assert w[0] > w[1] > w[2]
    w = fuse(flat, flat, t(1.0, 2.0, 3.0), o).weights  # harder -> lower
    assert w[0] > w[1] > w[2]


def test_switches_remove_each_signal():
    c, a, d = t(0.9, 0.5, 0.3), t(2.0, 0.0, -1.0), t(3.0, 2.0, 1.0)
    only_a = fuse(c, a, d, CompactOptions(variant="v1", use_c=False, use_d=False)).weights
    assert torch.allclose(only_a, fuse(t(1, 1, 1), a, t(1, 1, 1), CompactOptions()).weights)
    no_a = fuse(c, a, d, CompactOptions(variant="v1", use_a=False)).weights
    assert torch.allclose(no_a, fuse(c, t(0, 0, 0), d, CompactOptions()).weights)
    no_d = fuse(c, a, d, CompactOptions(variant="v1", use_d=False)).weights
    assert torch.allclose(no_d, fuse(c, a, t(0, 0, 0), CompactOptions()).weights)
    # without C there is no c_min cut either
    assert fuse(t(0.0, 1.0), t(0, 0), t(0, 0), CompactOptions(variant="v1", use_c=False)).weights[0] == pytest.approx(
        0.5
    )


def test_all_coefficients_zero_is_uniform_with_the_default_c_min():
    """Issue 21: the c_min cut belongs to C, so every coefficient 0 is uniform without also setting c_min = 0."""
    o = CompactOptions(variant="v1", lambda_c=0, lambda_a=0, lambda_d=0)
    assert o.c_min == 0.2
    w = fuse(t(0.9, 0.1, 0.4, 0.0), t(3, -2, 0, 1), t(1, 5, 2, 0.1), o).weights
    assert torch.allclose(w, torch.full((4,), 0.25, dtype=torch.float64))
    # with lambda_c > 0 the cut is back
    assert fuse(t(0.9, 0.1), t(0, 0), t(0, 0), CompactOptions(variant="v1")).weights[1] == 0


def test_branch_softmax_splits_a_teacher_over_its_branches():
    teachers = ["a", "b", "b", "b", "c"]
    uniform = branch_softmax(torch.zeros(5, dtype=torch.float64), teachers)
    assert teacher_shares(uniform, teachers) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert uniform[1:4].tolist() == pytest.approx([1 / 9] * 3)
    # a teacher's share never grows with its count: b's three equal branches weigh what one would
    s = t(0.5, 1.0, 1.0, 1.0, -0.2)
    three = teacher_shares(branch_softmax(s, teachers), teachers)
    one = teacher_shares(branch_softmax(t(0.5, 1.0, -0.2), ["a", "b", "c"]), ["a", "b", "c"])
    assert three == pytest.approx(one)
    # with one branch per teacher it is the plain softmax of METHODS.md §2e, and warm-up is uniform
    assert torch.allclose(branch_softmax(t(1, 2, 3), ["x", "y", "z"], tau=2.0), torch.softmax(t(1, 2, 3) / 2, 0))
    assert teacher_shares(branch_softmax(s, teachers, uniform=True), teachers) == pytest.approx(
        {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    )
    assert torch.allclose(split_over_branches({"a": 0.6, "b": 0.4}, ["a", "b", "b"]), t(0.6, 0.2, 0.2))


def test_c_min_cut_renormalises_and_all_cut_falls_back():
    o = CompactOptions()
    f = fuse(t(1.0, 0.1, 0.8), t(0, 0, 0), t(0, 0, 0), o)
    assert f.weights[1] == 0 and f.cut.tolist() == [False, True, False] and not f.fallback
    assert float(f.weights.sum()) == pytest.approx(1.0)
    f = fuse(t(0.1, 0.0, 0.05), t(1, 0, 0), t(0, 0, 0), o)
    assert f.fallback and bool(torch.isfinite(f.weights).all()) and float(f.weights.sum()) == pytest.approx(1.0)
    assert f.weights[0] > f.weights[1]  # the other signals still rank them
    # unknown C (no consensus from the filter stage) is neutral and never cut
    f = fuse(t(NAN, NAN), t(0, 0), t(0, 0), o)
    assert f.weights.tolist() == [0.5, 0.5]


def test_single_teacher_and_ties_never_nan():
    for c, a, d in [(t(0.0), t(NAN), t(NAN)), (t(1.0), t(5.0), t(2.0)), (t(NAN), t(NAN), t(NAN))]:
        assert fuse(c, a, d, CompactOptions()).weights.tolist() == [1.0]
    w = fuse(t(1, 1, 1), t(0, 0, 0), t(2, 2, 2), CompactOptions()).weights
    assert torch.allclose(w, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_warmup_is_uniform_over_survivors():
    o = CompactOptions()
    f = fuse(t(1.0, 0.0, 0.5), t(5, -5, 0), t(0, 9, 1), o, warmup=True)
    assert f.weights.tolist() == [0.5, 0.0, 0.5]
    assert [in_warmup(s, 100, 0.1) for s in (0, 9, 10, 50)] == [True, True, False, False]
    assert not in_warmup(0, 100, 0.0)


def test_temperature_sharpens():
    c, z = t(0.9, 0.6, 0.3), t(0, 0, 0)
    hot = fuse(c, z, z, CompactOptions(tau=10.0)).weights
    cold = fuse(c, z, z, CompactOptions(tau=0.1)).weights
    assert weight_entropy(hot) > weight_entropy(cold)
    assert cold[0] > 0.99


finite_or_nan = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(NAN))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda k: st.tuples(
            st.lists(st.one_of(st.floats(0, 1), st.just(NAN)), min_size=k, max_size=k),
            st.lists(finite_or_nan, min_size=k, max_size=k),
            st.lists(finite_or_nan, min_size=k, max_size=k),
        )
    ),
    st.floats(0.01, 100),
    st.booleans(),
)
def test_weights_always_sum_to_one_and_finite(cad, tau, warm):
    c, a, d = (torch.tensor(x, dtype=torch.float64) for x in cad)
    w = fuse(c, a, d, CompactOptions(tau=tau), warmup=warm).weights
    assert bool(torch.isfinite(w).all())
    assert bool((w >= 0).all())
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-9)


def test_difficulty_ema_folds_a_step_once_and_state_roundtrip():
    ema = DifficultyEMA(mu=0.5)
    ema.observe({"a": [1.0]})
    ema.observe({"a": [3.0], "b": [2.0]})  # two micro-batches of one step: one update with their mean
    assert ema.ema == {}
    ema.sync(1)
    assert ema.ema == {"a": 2.0, "b": 2.0} and ema.pending == {}
    ema.observe({"a": [4.0]})
    ema.sync(1)
    assert ema.ema["a"] == pytest.approx(3.0) and ema.ema["b"] == 2.0


def test_difficulty_ema_and_state_roundtrip():
    ema = DifficultyEMA(mu=0.9)
    assert ema.smoothed("a", 2.0) == 2.0  # first sight: D* = D
    ema.update({"a": [2.0, 4.0], "b": [1.0]})
    assert ema.ema == {"a": 3.0, "b": 1.0}
    assert ema.smoothed("a", 1.0) == 2.0
    ema.update({"a": [1.0], "b": [NAN]})
    assert ema.ema["a"] == pytest.approx(0.9 * 3.0 + 0.1 * 1.0) and ema.ema["b"] == 1.0
    other = DifficultyEMA(mu=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.ema == ema.ema


def test_adaptability_and_span_logprob():
    tl = torch.tensor([[0.0, 1.0, 3.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    lp = span_mean_logprob(tl, [(1, 3), None])
    assert lp[0] == pytest.approx(-2.0) and math.isnan(lp[1])
    a = adaptability(t(-1.0, -20.0, NAN), t(-3.0, 0.0, -1.0), clip=5.0)
    assert a[0] == pytest.approx(2.0) and a[1] == -5.0 and math.isnan(a[2])


def test_weight_trajectory_and_plot(tmp_path):
    import json

    from cotdistill.errors import InputError
    from cotdistill.training.methods.compact.plot import plot_weight_trajectory, weight_trajectory

    log = tmp_path / "compact_weights.jsonl"
    rows = [(0, "q1", "a", 0.5), (0, "q1", "b", 0.5), (0, "q2", "a", 0.9), (0, "q2", "b", 0.1), (1, "q3", "a", 0.2)]
    log.write_text(
        "".join(
            json.dumps({"schema_version": 1, "step": s, "epoch": 0, "question_id": q, "teacher": t, "weight": w}) + "\n"
            for s, q, t, w in rows
        )
    )
    traj = weight_trajectory(log)
    assert traj["a"] == [(0, pytest.approx(0.7)), (1, pytest.approx(0.2))] and traj["b"] == [(0, pytest.approx(0.3))]
    png = plot_weight_trajectory(log, tmp_path / "fig" / "w.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log.write_text('{"step": 0}\n')
    with pytest.raises(InputError, match=":1: bad compact_weights record"):
        weight_trajectory(log)
