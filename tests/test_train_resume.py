"""Acceptance 1: SIGKILL after a checkpoint, resume, and the remaining per-step losses match an uninterrupted run."""

from __future__ import annotations

import json
import signal

import torch
from safetensors.torch import load_file

from conftest import run_cli
from trainutil import TINY, write_add_run, write_config


def _metrics(run):
    return [json.loads(line) for line in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]


def test_sigkill_resume_matches_uninterrupted(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", [TINY], epochs=2, batch_size=5, checkpoint_every=4, keep_checkpoints=3)
    ref = write_add_run(tmp_path / "ref", n_train=40, n_dev=4, paths_per_q=1)
    killed = write_add_run(tmp_path / "killed", n_train=40, n_dev=4, paths_per_q=1)

    r = run_cli("train", str(ref), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    # 8 steps per epoch; checkpoint after step 4, killed after step 6 (mid-epoch, records of steps 5-6 written)
    r = run_cli("train", str(killed), "-c", str(cfg), env={"COTDISTILL_TEST_SIGKILL_AT_STEP": "6"})
    assert r.returncode == -signal.SIGKILL
    assert len(_metrics(killed)) == 6
    assert not (killed / "students" / "s").exists()
    r = run_cli("train", str(killed), "-c", str(cfg))
    assert r.returncode == 0, r.stderr

    a, b = _metrics(ref), _metrics(killed)
    assert [x["step"] for x in b] == list(range(16))  # no duplicated or missing steps after the resume
    for x, y in zip(a, b, strict=True):
        assert abs(x["losses"]["total"] - y["losses"]["total"]) <= 1e-6, (x, y)
        assert x["lr"] == y["lr"]
    wa = load_file(ref / "students" / "s" / "model.safetensors")
    wb = load_file(killed / "students" / "s" / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    summary = json.loads((killed / "logs" / "train_summary.json").read_text())
    assert summary["resumed_from"] == "step-00000004"
