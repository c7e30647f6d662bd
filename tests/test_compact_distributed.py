"""COMPACT under two processes (gloo, CPU) takes the same steps as one process (issue 21): whole questions per
process, the difficulty EMA folded in once per step after summing every process's statistics."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, run_cli, torchrun
from test_compact_reductions import TINY, write_run


def read(p):
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["paper", "v1"])
def test_two_process_compact_run_matches_one_process(tmp_path, variant):
    opts = {"warmup_ratio": 0.0, "unfiltered": True}
    opts.update({"ppl_ema": True} if variant == "paper" else {"variant": "v1"})
    cfg = {"seed": 0, "students": [TINY], "prompt": "bare",
           "train": {"method": "compact", "epochs": 2, "batch_size": 12, "grad_accum": 2, "max_length": 160,
                     "trackers": [], "bf16": False, "options": opts}}  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # 10 questions x 4 branches, 3 questions a micro-batch: shards of 2 and 1 questions; the last micro-batch of
    # an epoch has one question, none for the second process (it still takes part in the step's sums)
    one = write_run(tmp_path / "one", ["a", "c"], 2, n=10)
    two = write_run(tmp_path / "two", ["a", "c"], 2, n=10)
    r = run_cli("train", str(one), "-c", str(tmp_path / "c.yaml"))
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [*torchrun(), "train"]
    r = subprocess.run([*cmd, str(two), "-c", str(tmp_path / "c.yaml")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two / "logs" / "train_summary.json").read_text())["processes"] == 2
    a = load_file(one / "students" / "s" / "model.safetensors")
    b = load_file(two / "students" / "s" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    la, lb = read(one / "logs" / "train_metrics.jsonl"), read(two / "logs" / "train_metrics.jsonl")
    assert len(la) == len(lb) == 2 * 2
    for x, y in zip(la, lb, strict=True):
        assert x["losses"] == pytest.approx(y["losses"], abs=1e-5)
    wa = {(r["step"], r["question_id"], r["teacher"]): r for r in read(one / "logs" / "compact_weights.jsonl")}
    wb = {(r["step"], r["question_id"], r["teacher"]): r for r in read(two / "logs" / "compact_weights.jsonl")}
    assert wa.keys() == wb.keys() and len(wa) == 2 * 10 * 2
    key = "S_PPL" if variant == "paper" else "D"
    for k, x in wa.items():
        assert x["weight"] == pytest.approx(wb[k]["weight"], abs=1e-5)
        assert x[key] == pytest.approx(wb[k][key], abs=1e-5)  # the EMA-smoothed difficulty: same on both
    assert len({round(x["weight"], 4) for x in wa.values()}) > 2  # weights that moved (the check can fail)
