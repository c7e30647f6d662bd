"""Acceptance 2: N processes with the same global batch take the same steps as one process."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, accelerate_launch, run_cli, torchrun
from cotdistill.config import StudentConfig
from cotdistill.students import build_student
from cotdistill.students.encoding import collate, encode
from cotdistill.training.data import shard
from cotdistill.training.student import Student
from trainutil import TINY, write_add_run, write_config


def test_shard_scaling_sums_to_the_full_batch_gradient():
    """The loop's rule (loss x shard share, gradients summed over ranks) equals the full batch, uneven shards too."""
    torch.manual_seed(0)
    texts = [f"What is {a} + {b}? {a + b}" for a in range(10) for b in range(10)]
    b = build_student(StudentConfig(**TINY), texts)
    s = Student("s", b.model, b.tokenizer, torch.device("cpu"), bf16=False, lora=False)
    items = [encode(b.tokenizer, f"What is {i} + 1?", f"{i} + 1 = {i + 1}. The answer is {i + 1}.") for i in range(7)]
    batch = list(range(7))

    def grads(idx: list[int], scale: float) -> list[torch.Tensor]:
        s.model.zero_grad()
        (s.forward(collate([items[i] for i in idx], 0)).loss.mean() * scale).backward()
        return [p.grad.clone() for p in s.model.parameters()]

    full = grads(batch, 1.0)
    for world in (2, 3):
        parts = [shard(batch, ["q"] * 7, r, world, "path") for r in range(world)]
        summed = [sum(gs) for gs in zip(*(grads(p, len(p) / 7) for p in parts), strict=True)]
        assert all(torch.allclose(a, c, atol=1e-6) for a, c in zip(full, summed, strict=True))


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=8, grad_accum=2)
    one = write_add_run(tmp_path / "one", n_train=37, n_dev=3, paths_per_q=1)  # last micro-batch: 5 -> shards 3/2
    two = write_add_run(tmp_path / "two", n_train=37, n_dev=3, paths_per_q=1)
    r = run_cli("train", str(one), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    cmd = [*torchrun(), "train"]
    r = subprocess.run([*cmd, str(two), "-c", str(cfg)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two / "logs" / "train_summary.json").read_text())["processes"] == 2
    a = load_file(one / "students" / "s" / "model.safetensors")
    b = load_file(two / "students" / "s" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    la = [json.loads(x)["losses"]["total"] for x in (one / "logs" / "train_metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["losses"]["total"] for x in (two / "logs" / "train_metrics.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 3 and all(abs(x - y) < 1e-5 for x, y in zip(la, lb, strict=True))


def _losses(run) -> list[float]:
    return [json.loads(x)["losses"]["total"] for x in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]


SLOW = pytest.mark.slow


ANSWERS = {"answer_examples": True}


@pytest.mark.parametrize(
    ("method", "options"),
    [pytest.param("sft-multi", {}, marks=SLOW),  # the answer-examples run below covers the plain one and more
     ("step-by-step", {}), ("qr-distill", {}), ("sft-multi", ANSWERS),
     pytest.param("qr-distill", ANSWERS, marks=SLOW), pytest.param("compact", {}, marks=SLOW)],
)  # fmt: skip
def test_accelerate_launch_with_the_cpu_ddp_config_matches_one_process(tmp_path, method, options):
    """The shipped configs/accelerate/cpu-ddp.yaml: 2 gloo processes take the steps 1 process takes, per method
    (QR-Distill with two students, COMPACT over two paths per question) and with ``options.answer_examples``.
    Pins three seams: step-by-step's per-kind means and ``L_answer`` + the method's loss on the other examples are
    means over the global micro-batch, not the shard; and a student no path reached in a step (QR-Distill) gets no
    grad on any process, so the optimizer skips it as it does with one process."""
    students = [TINY, {**TINY, "name": "s2"}] if method == "qr-distill" else [TINY]
    per_q = 2 if method in ("qr-distill", "compact") else 1
    cfg = write_config(tmp_path / "c.yaml", students, epochs=1, batch_size=8, method=method, options=options)
    one = write_add_run(tmp_path / "one", n_train=21, n_dev=0, paths_per_q=per_q)
    two = write_add_run(tmp_path / "two", n_train=21, n_dev=0, paths_per_q=per_q)
    r = run_cli("train", str(one), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launch = [*accelerate_launch(REPO / "configs" / "accelerate" / "cpu-ddp.yaml"), "train"]
    r = subprocess.run([*launch, str(two), "-c", str(cfg)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two / "logs" / "train_summary.json").read_text())["processes"] == 2
    la, lb = _losses(one), _losses(two)
    assert len(la) == len(lb) >= 3 and all(abs(x - y) < 1e-5 for x, y in zip(la, lb, strict=True))


def test_deepspeed_is_refused_in_one_line_and_fsdp_is_run():
    from accelerate.utils import DistributedType

    from cotdistill.errors import CotdistillError
    from cotdistill.training.engines import check_engine

    for ok in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU, DistributedType.FSDP):
        check_engine(ok)
    with pytest.raises(CotdistillError, match=r"DEEPSPEED engine: .*configs/accelerate/cpu-ddp\.yaml"):
        check_engine(DistributedType.DEEPSPEED)
