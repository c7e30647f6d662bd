"""Acceptance 1: SIGKILL after a checkpoint, resume, and the remaining per-step losses match an uninterrupted run."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from safetensors.torch import load_file

from conftest import run_cli
from trainutil import TINY, write_add_run, write_config


def _metrics(run):
    return [json.loads(line) for line in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (2 epochs x 8 steps, a checkpoint every 4 steps) every kill point is compared with."""
    root = tmp_path_factory.mktemp("resume")
    cfg = write_config(root / "c.yaml", [TINY], epochs=2, batch_size=5, checkpoint_every=4, keep_checkpoints=3)
    ref = write_add_run(root / "ref", n_train=40, n_dev=4, paths_per_q=1)
    r = run_cli("train", str(ref), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    return cfg, ref


# 2: before the first checkpoint (starts over); 6: mid-epoch after one; 8: the last step of epoch 1, before its
# dev check; 13: mid epoch 2, with an older checkpoint pruned
@pytest.mark.parametrize("kill_at", [2, 6, 8, 13])
def test_sigkill_resume_matches_uninterrupted(tmp_path, reference, kill_at: int):
    cfg, ref = reference
    killed = write_add_run(tmp_path / "killed", n_train=40, n_dev=4, paths_per_q=1)
    r = run_cli("train", str(killed), "-c", str(cfg), env={"COTDISTILL_TEST_SIGKILL_AT_STEP": str(kill_at)})
    assert r.returncode == -signal.SIGKILL
    assert len(_metrics(killed)) == kill_at  # the records of every finished step were written
    assert not (killed / "students" / "s" / "model.safetensors").exists()  # no final model (best/ may exist)
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
    if kill_at < 4:
        assert summary["resumed_from"] is None
    else:
        assert summary["resumed_from"] is not None and summary["resumed_from"].startswith("step-")
