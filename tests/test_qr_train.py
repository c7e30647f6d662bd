"""QR-Distill on the shared loop, end to end on lab data: a tiny-gpt2 and a tiny-llama student (different
tokenizers), the CLI, routing logs whose per-style rates move over training, and resume after SIGKILL."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import run_cli
from cotdistill.rundir import RunDir
from qr_lab import STYLES, make_lab_run, two_student_config

pytest.importorskip("cotdistill.training.loop", reason="the shared training loop (branch train) is not merged")

KILL_ENV = "COTDISTILL_TEST_SIGKILL_AT_STEP"
OPTIONS: dict = {}  # the defaults: the router learns at its default module_lr


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _train(run: RunDir, cfg: Path, env: dict[str, str] | None = None, fresh: bool = False):
    args = ["train", str(run.root), "--method", "qr-distill", "-c", str(cfg)] + (["--fresh"] if fresh else [])
    return run_cli(*args, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> RunDir:
    run = make_lab_run(tmp_path_factory.mktemp("qr-run"), n_train=8, n_dev=2)
    cfg = two_student_config(run, epochs=3, batch_size=8, options=OPTIONS)
    res = _train(run, cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


def test_end_to_end_outputs(trained: RunDir):
    run = trained
    for name in ("gpt2", "llama"):
        assert (run.students / name / "config.json").exists()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run.students / "llama")
    tok = AutoTokenizer.from_pretrained(run.students / "gpt2")
    assert model.config.model_type == "llama" and len(tok) > 0
    metrics = _jsonl(run.logs / "train_metrics.jsonl")
    keys = set(metrics[0]["losses"])
    assert {"ce/gpt2", "ce/llama", "entropy", "mutual", "competence", "total"} <= keys
    first = sum(m["losses"]["ce/gpt2"] for m in metrics[:3])
    last = sum(m["losses"]["ce/gpt2"] for m in metrics[-3:])
    assert last < first  # the students learn
    routing = _jsonl(run.logs / "routing.jsonl")
    summary = json.loads((run.logs / "train_summary.json").read_text())
    train_ids = {q["id"] for q in _jsonl(run.questions) if q["split"] == "train"}
    n_kept = sum(1 for p in _jsonl(run.filtered) if p["checks"]["kept"] and p["question_id"] in train_ids)
    assert 0 < summary["examples"] == n_kept - summary["dropped_overlong"]
    assert len(routing) == 3 * 2 * summary["examples"]  # epochs x students x paths
    assert {r["style"] for r in routing} == set(STYLES)
    assert {r["teacher"] for r in routing} == {"careful", "sloppy"}
    per_step_path: dict[tuple[int, str], int] = defaultdict(int)
    for r in routing:
        per_step_path[(r["step"], r["path_id"])] += r["gate"]
    assert min(per_step_path.values()) >= 1  # every path went to some student


def test_routing_rates_change_over_training(trained: RunDir):
    rates = [r for r in _jsonl(trained.logs / "routing_rates.jsonl") if r["kind"] == "style"]
    by_epoch: dict[int, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in rates:
        by_epoch[r["epoch"]][(r["style"], r["student"])] = r["rate"]
    assert sorted(by_epoch) == [0, 1, 2]
    assert set(by_epoch[0]) == {(s, n) for s in STYLES for n in ("gpt2", "llama")}
    assert any(by_epoch[0][k] != by_epoch[2][k] for k in by_epoch[0])
    # beyond the gate noise: the router's noise-free opening probability per style x student moves
    routing = _jsonl(trained.logs / "routing.jsonl")
    prob: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for r in routing:
        prob[(r["epoch"], r["style"], r["student"])].append(r["prob"])
    mean = {k: sum(v) / len(v) for k, v in prob.items()}
    moves = [abs(mean[(2, s, n)] - mean[(0, s, n)]) for s in STYLES for n in ("gpt2", "llama")]
    assert max(moves) > 0.01


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path: Path, trained: RunDir):
    """Kill after step 4 (a checkpoint every 2 steps), resume: losses and routing equal the uninterrupted run."""
    run = make_lab_run(tmp_path / "killed", n_train=8, n_dev=2)
    cfg = two_student_config(run, epochs=3, batch_size=8, options=OPTIONS, checkpoint_every=2)
    res = _train(run, cfg, env={KILL_ENV: "5"})
    assert res.returncode != 0  # killed
    assert (run.root / "checkpoints").exists()
    res = _train(run, cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    ref = _jsonl(trained.logs / "train_metrics.jsonl")
    got = _jsonl(run.logs / "train_metrics.jsonl")
    assert [m["step"] for m in got] == [m["step"] for m in ref]
    for a, b in zip(got, ref, strict=True):
        for k in b["losses"]:
            assert a["losses"][k] == pytest.approx(b["losses"][k], abs=1e-5), (a["step"], k)
    strip = ("step", "epoch", "question_id", "path_id", "student", "gate")
    assert [tuple(r[k] for k in strip) for r in _jsonl(run.logs / "routing.jsonl")] == [
        tuple(r[k] for k in strip) for r in _jsonl(trained.logs / "routing.jsonl")
    ]


@pytest.mark.slow
def test_filter_off_trains_on_every_path(tmp_path: Path):
    run = make_lab_run(tmp_path / "nofilter", n_train=8, n_dev=2, styles=["vanilla", "cot"])
    cfg = two_student_config(run, epochs=1, options={"filter": False, "peer": False})
    res = _train(run, cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    train_ids = {q["id"] for q in _jsonl(run.questions) if q["split"] == "train"}
    all_paths = {p["id"] for p in _jsonl(run.filtered) if p["question_id"] in train_ids}
    routed = {r["path_id"] for r in _jsonl(run.logs / "routing.jsonl")}
    assert routed == all_paths
    assert "mutual" not in _jsonl(run.logs / "train_metrics.jsonl")[0]["losses"]


def test_one_student_is_a_clear_error(tmp_path: Path):
    run = make_lab_run(tmp_path / "one", n_train=4, n_dev=0, styles=["vanilla"])
    cfg = two_student_config(run, epochs=1, students=[{"name": "solo", "preset": "tiny-gpt2", "size": {"n_layer": 1}}])
    res = _train(run, cfg)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "student" in (res.stderr + res.stdout).lower()
