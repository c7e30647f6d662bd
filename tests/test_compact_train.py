"""COMPACT on the shared loop through the CLI: logs by the preamble's contracts, state saved and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compact_harness import synthetic_data
from conftest import run_cli
from cotdistill.io import atomic_write_jsonl

TINY = {
    "name": "s",
    "kind": "preset",
    "preset": "tiny-gpt2",
    "size": {"vocab": 300, "d_model": 32, "n_head": 2, "d_ff": 64, "n_layer": 1, "n_positions": 128},
}


def write_run(root: Path, n: int = 8, **train: object) -> Path:
    qs, ps = synthetic_data(n, {"a": 1, "b": 1}, seed=0)
    for i, p in enumerate(ps):
        p.checks["consensus"] = 1.0 if p.teacher == "a" else (0.1 if i % 4 == 1 else 0.8)
        if p.teacher == "b":  # identical branches would tie every signal (uniform weights, L_MCon = 0)
            p.text = "Let me see. " + p.text
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(root / "questions.jsonl", qs.values())
    atomic_write_jsonl(root / "filtered.jsonl", ps)
    cfg = {
        "seed": 0,
        "students": [TINY],
        "prompt": "bare",  # tiny presets: the bare question (shorter sequences, the mechanics are what is tested)
        "train": {"method": "compact", "trackers": [], "bf16": False, "max_length": 128, **train},
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return root


def read(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


PAPER_KEYS = {"schema_version", "step", "epoch", "question_id", "teacher", "weight", "branches", "S_MI", "S_cons",
              "S_PPL", "L_MCon"}  # fmt: skip


def weight_sums(recs: list[dict]) -> list[float]:
    by_q: dict[tuple[int, str], float] = {}
    for r in recs:
        by_q[(r["step"], r["question_id"])] = by_q.get((r["step"], r["question_id"]), 0) + r["weight"]
    return list(by_q.values())


def test_train_compact_cli_writes_contract_logs(tmp_path):
    """The paper variant (default): per (question, teacher) and step the weight and the three signals; L_MCon
    per step as a loss component; the tracker scalars."""
    run = write_run(tmp_path / "r", epochs=1, batch_size=4, options={"warmup_ratio": 0.25})
    r = run_cli("train", str(run), "-c", str(run / "cfg.yaml"))
    assert r.returncode == 0, r.stderr
    recs = read(run / "logs" / "compact_weights.jsonl")
    assert {r["step"] for r in recs} == {0, 1, 2, 3}  # 8 questions x 2 paths, 4 examples (2 questions) a step
    assert len(recs) == 8 * 2 and all(set(r) == PAPER_KEYS for r in recs)
    assert all(abs(v - 1) < 1e-9 for v in weight_sums(recs))
    assert all(r["weight"] == 0.5 for r in recs if r["step"] == 0)  # warm-up: 25% of 4 steps, uniform
    assert any(abs(r["weight"] - 0.5) > 1e-3 for r in recs if r["step"] > 0)  # fused weights after warm-up
    assert all(r["S_PPL"] > 0 and r["S_MI"] >= 0 and r["S_cons"] == 1.0 and r["L_MCon"] >= 0 for r in recs)
    metrics = read(run / "logs" / "train_metrics.jsonl")
    assert len(metrics) == 4 and {"total", "ce/s", "sft", "mcon"} <= set(metrics[0]["losses"])
    scal = set(metrics[-1]["scalars"])
    assert {
        "compact/weight/a",
        "compact/S_MI/b",
        "compact/S_cons/a",
        "compact/S_PPL/a",
        "compact/weight_entropy",
    } <= scal
    assert (run / "students" / "s" / "config.json").exists()


def test_train_compact_v1_cli(tmp_path):
    run = write_run(tmp_path / "r", epochs=1, batch_size=4, options={"variant": "v1", "warmup_ratio": 0.25})
    r = run_cli("train", str(run), "-c", str(run / "cfg.yaml"))
    assert r.returncode == 0, r.stderr
    recs = read(run / "logs" / "compact_weights.jsonl")
    assert len(recs) == 8 * 2
    for r in recs:
        assert set(r) == {"schema_version", "step", "epoch", "question_id", "teacher", "weight", "C", "A", "D"}
    assert all(abs(v - 1) < 1e-9 for v in weight_sums(recs))
    # warm-up (25% of 4 steps): uniform over the teachers that survive the c_min cut
    assert sorted(r["weight"] for r in recs if r["step"] == 0) in ([0.5] * 4, [0.0, 0.5, 0.5, 1.0])
    assert all(r["weight"] == 0 for r in recs if r["C"] < 0.2)  # c_min cut
    assert any(r["weight"] not in (0.0, 0.5, 1.0) for r in recs if r["step"] > 0)
    assert {"compact/weight/a", "compact/A/a"} <= set(read(run / "logs" / "train_metrics.jsonl")[-1]["scalars"])


def test_unknown_option_is_a_one_line_error(tmp_path):
    run = write_run(tmp_path / "r", epochs=1, options={"lamda_a": 2})
    r = run_cli("train", str(run), "-c", str(run / "cfg.yaml"))
    assert r.returncode == 2
    assert "options.lamda_a: unknown option for method 'compact'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_killed_and_resumed_run_logs_the_same_weights(tmp_path):
    """SIGKILL after step 3 of 8, resume from the step-2 checkpoint: the EMA state comes back with it."""
    opts = {"warmup_ratio": 0.0, "ppl_ema": True}
    full = write_run(tmp_path / "full", epochs=2, batch_size=4, checkpoint_every=2, options=opts)
    assert run_cli("train", str(full), "-c", str(full / "cfg.yaml")).returncode == 0
    cut = write_run(tmp_path / "cut", epochs=2, batch_size=4, checkpoint_every=2, options=opts)
    r = run_cli("train", str(cut), "-c", str(cut / "cfg.yaml"), env={"COTDISTILL_TEST_SIGKILL_AT_STEP": "3"})
    assert r.returncode != 0
    r = run_cli("train", str(cut), "-c", str(cut / "cfg.yaml"))
    assert r.returncode == 0, r.stderr
    a = read(full / "logs" / "compact_weights.jsonl")
    b = read(cut / "logs" / "compact_weights.jsonl")
    assert len(a) == len(b) == 2 * 8 * 2
    for x, y in zip(a, b, strict=True):
        assert (x["step"], x["question_id"], x["teacher"]) == (y["step"], y["question_id"], y["teacher"])
        assert x["weight"] == pytest.approx(y["weight"], abs=1e-6)
        assert x["S_PPL"] == pytest.approx(y["S_PPL"], abs=1e-6)
