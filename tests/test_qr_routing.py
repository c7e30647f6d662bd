"""QR-Distill's router controls and diagnostics (issue 20): ``routing: random``, the router's standardised input,
the per-epoch diagnostics (selection with and without fallbacks, fallback share, Spearman), the options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError
from cotdistill.rundir import RunDir
from cotdistill.training.methods.qr_distill.diagnostics import RoutingDiagnostics, spearman
from cotdistill.training.methods.qr_distill.method import QRDistill
from cotdistill.training.methods.qr_distill.router import Router
from qr_students import TinyStudent, make_model, make_tokenizer, planted_data, run_method


def _students() -> list[TinyStudent]:
    out = []
    for i, kind in enumerate(["gpt2", "llama"]):
        tok = make_tokenizer(300 + 40 * i)
        out.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=i, d=32), tok))
    return out


def _method(tmp_path, students, **options) -> QRDistill:
    cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": options})
    return QRDistill(cfg, students, RunDir.at(tmp_path))


def test_random_routing_freezes_the_seeded_router_and_still_samples_gates(tmp_path):
    questions, paths = planted_data(12)
    students = _students()
    m = _method(tmp_path, students, routing="random")
    learned = _method(tmp_path, _students())
    ex = m.examples(questions, paths)
    learned.examples(questions, paths)
    assert all(not p.requires_grad for p in m.router.parameters())
    for a, b in zip(m.router.state_dict().values(), learned.router.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same seeded initialisation (and input standardisation) as the learned one
    before = {k: v.clone() for k, v in m.router.state_dict().items()}
    recs = run_method(m, students, ex, epochs=2)
    assert all(torch.equal(before[k], v) for k, v in m.router.state_dict().items())
    per_student = [r for r in recs if r["kind"] == "student"]
    assert all(0.2 < r["rate_no_fallback"] < 0.8 for r in per_student)  # gates sampled, not all open
    assert all(r["prob_std"] < 0.1 for r in per_student)


def test_routing_option_takes_true_false_and_random():
    from cotdistill.config import load_config

    for text, want in (("true", True), ("false", False), ("random", "random")):
        cfg = load_config(None, ["train.method=qr-distill", f"train.options.routing={text}"])
        assert cfg.train.options["routing"] == want
    with pytest.raises(ConfigError, match="routing"):
        load_config(None, ["train.method=qr-distill", "train.options.routing=randm"])


def test_router_input_is_standardised_over_the_training_set():
    """Unit sentence vectors around a common mean: the raw MLP's logits barely differ between paths; after the
    standardisation they spread like a default-initialised MLP on unit-variance inputs."""
    gen = torch.Generator().manual_seed(0)
    common = torch.nn.functional.normalize(torch.randn(1, 64, generator=gen), dim=1)
    emb = torch.nn.functional.normalize(common + 0.3 * torch.randn(200, 64, generator=gen) / 8, dim=1)
    router = Router(64, 2, seed=0)
    raw_spread = float(router(emb).detach().std(0).mean())
    router.fit_input(emb)
    x = (emb - router.in_mean) * router.in_scale
    assert torch.allclose(x.mean(0), torch.zeros(64), atol=1e-4) and torch.allclose(x.std(0), torch.ones(64), atol=0.01)
    assert float(router(emb).detach().std(0).mean()) > 10 * raw_spread


def test_spearman():
    x = np.arange(10.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, np.ones(10)) is None and spearman(x[:2], x[:2]) is None


def test_diagnostics_records_with_and_without_fallbacks():
    """Four paths, two students: path 3 fell back to student 1; student 0's probabilities rank its centred losses
    in reverse (it learned), student 1's do not."""
    d = RoutingDiagnostics(["a", "b"])
    d.add({
        "styles": ["cot", "cot", "program", "program"], "fallback": [False, False, False, True],
        "prob": [[0.9, 0.5], [0.8, 0.5], [0.2, 0.5], [0.1, 0.5]],
        "gate": [[1, 1], [1, 0], [0, 1], [0, 1]], "own": [[1, 1], [1, 0], [0, 1], [0, 0]],
        "centred": [[-1.0, 0.3], [-0.5, -0.2], [0.5, 0.1], [1.0, 0.0]],
    })  # fmt: skip
    recs = d.records(epoch=2)
    style = {(r["style"], r["student"]): r for r in recs if r["kind"] == "style"}
    assert style[("program", "b")]["rate"] == 1.0 and style[("program", "b")]["rate_no_fallback"] == 0.5
    assert style[("program", "b")]["fallbacks"] == 1 and style[("cot", "a")]["rate"] == 1.0
    stud = {r["student"]: r for r in recs if r["kind"] == "student"}
    assert stud["a"]["spearman"] == pytest.approx(-1.0) and stud["b"]["spearman"] is None  # constant probability
    assert stud["a"]["prob_mean"] == pytest.approx(0.5) and stud["a"]["prob_std"] == pytest.approx(0.3535, abs=1e-3)
    assert stud["b"]["fallback_share"] == 1.0 and stud["a"]["fallback_share"] == 0.0
    assert stud["a"]["fallback_rate"] == 0.25 and stud["b"]["rate"] == 0.75 and stud["b"]["rate_no_fallback"] == 0.5
    assert all(r["epoch"] == 2 for r in recs) and d.records(3) == []  # reset after the epoch
