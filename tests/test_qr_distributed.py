"""QR-Distill under several processes (issue 20, acceptance 3): the same steps as one process.

In process: a batch split into the loop's two shards, with the all-reduce played by hand, gives the full batch's
loss values and (after the loop's share scaling and gradient sum) its gradients. End to end: ``torchrun
--nproc_per_node 2`` on gloo matches the one-process run's losses step for step (absolute tolerance 1e-4 on every
logged loss; measured differences are float noise, ~1e-6), with a last micro-batch of one path, so one rank has
an empty shard and joins the collectives through ``Method.on_empty_shard``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import cotdistill.training.methods.qr_distill.method as qr_method
import cotdistill.training.methods.qr_distill.stats as qr_stats
from conftest import REPO, run_cli, torchrun
from cotdistill.config import RunConfig
from cotdistill.rundir import RunDir
from cotdistill.training.methods.base import StepInfo
from cotdistill.training.methods.qr_distill.method import QRDistill
from qr_lab import make_lab_run, two_student_config
from qr_students import TinyStudent, make_batch, make_model, make_tokenizer, planted_data

TOL = 1e-4


def _students() -> list[TinyStudent]:
    out = []
    for i, kind in enumerate(["gpt2", "llama"]):
        tok = make_tokenizer(300 + 40 * i)
        out.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=i, d=32 + 16 * i), tok))
    return out


def _params(m: QRDistill, students) -> list[torch.nn.Parameter]:
    ps = [p for s in students for p in s.model.parameters()]
    return ps + [p for mod in m.modules().values() for p in mod.parameters() if p.requires_grad]


def test_two_shards_with_summed_statistics_equal_the_full_batch(tmp_path, monkeypatch):
    questions, paths = planted_data(12)
    students = _students()
    cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": {}})
    m = QRDistill(cfg, students, RunDir.at(tmp_path))
    ex = m.examples(questions, paths)[:11]
    info = StepInfo(step=3, epoch=0, total_steps=10)
    monkeypatch.setattr(qr_method, "all_gather_objects", lambda part: [part])
    params = _params(m, students)

    full = m.compute(make_batch(students, ex), info)
    assert full.records.get("competence")  # peer teaching is in the comparison
    ref = torch.autograd.grad(full.losses["total"], params, allow_unused=True)
    shards = [ex[0::2], ex[1::2]]  # the loop's path sharding
    local: list[torch.Tensor] = []
    monkeypatch.setattr(qr_stats, "all_sum", lambda t: local.append(t.detach().clone()) or t)
    for sh in shards:  # each process's own statistics (they depend on its shard only)
        m.compute(make_batch(students, sh), info)
    summed = local[0] + local[1]
    monkeypatch.setattr(qr_stats, "all_sum", lambda t: summed.clone())
    grads = [torch.zeros_like(p) for p in params]
    for sh in shards:
        out = m.compute(make_batch(students, sh), info)
        for k, v in full.losses.items():
            assert float(out.losses[k].detach()) == pytest.approx(float(v.detach()), abs=1e-5), (
                k
            )  # global values on every process
        share = len(sh) / len(ex)
        for acc, g in zip(grads, torch.autograd.grad(out.losses["total"] * share, params, allow_unused=True),
                          strict=True):  # fmt: skip
            if g is not None:
                acc += g
    for p, a, b in zip(params, grads, ref, strict=True):
        b = torch.zeros_like(p) if b is None else b
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), float((a - b).abs().max())


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path):
    one = make_lab_run(tmp_path / "one", n_train=10, n_dev=2)
    two = make_lab_run(tmp_path / "two", n_train=10, n_dev=2)
    train_ids = {q["id"] for q in _jsonl(one.questions) if q["split"] == "train"}
    n = sum(1 for p in _jsonl(one.filtered) if p["checks"]["kept"] and p["question_id"] in train_ids)
    bs = next(b for b in range(5, 16) if n % b == 1)  # the last micro-batch holds one path: rank 1's shard is empty
    assert (n // bs + 1) % 2 == 0  # ... and ends a (grad_accum 2) step with a full one
    for run in (one, two):
        two_student_config(run, epochs=2, batch_size=bs, grad_accum=2)
    r = run_cli("train", str(one.root), "-c", str(one.root / "qr.yaml"))
    assert r.returncode == 0, r.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [*torchrun(), "train"]
    r = subprocess.run([*cmd, str(two.root), "-c", str(two.root / "qr.yaml")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two.logs / "train_summary.json").read_text())["processes"] == 2
    la, lb = _jsonl(one.logs / "train_metrics.jsonl"), _jsonl(two.logs / "train_metrics.jsonl")
    assert len(la) == len(lb) > 4
    for a, b in zip(la, lb, strict=True):
        assert set(a["losses"]) == set(b["losses"]) >= {"total", "entropy", "mutual", "competence"}
        for k, v in a["losses"].items():
            assert abs(v - b["losses"][k]) < TOL, (a["step"], k, v, b["losses"][k])
        for k, v in a["scalars"].items():
            assert abs(v - b["scalars"][k]) < TOL, (a["step"], k)
    ra = [r for r in _jsonl(one.logs / "routing_rates.jsonl") if r["kind"] == "student"]
    rb = [r for r in _jsonl(two.logs / "routing_rates.jsonl") if r["kind"] == "student"]
    assert [(r["epoch"], r["student"], r["n"], r["rate"]) for r in ra] == [
        (r["epoch"], r["student"], r["n"], r["rate"]) for r in rb
    ]

    def routes(run: RunDir) -> list[tuple]:
        return sorted((r["step"], r["path_id"], r["student"], r["gate"]) for r in _jsonl(run.logs / "routing.jsonl"))

    assert routes(one) == routes(two)
