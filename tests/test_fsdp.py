"""FSDP2 (``train.engine: fsdp``): 2 gloo processes with sharded students take the steps 1 process takes, save the
same students, resume exactly after a kill, and refuse in one line what they cannot run."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, accelerate_launch, run_cli
from cotdistill.config import load_config
from cotdistill.errors import ConfigError
from cotdistill.training.engines import wants_fsdp
from cotdistill.training.methods.registry import method_spec
from cotdistill.training.sharding import check_fsdp
from test_compact_reductions import write_run
from trainutil import TINY, write_add_run, write_config

LLAMA_LORA = {"name": "l", "kind": "preset", "preset": "tiny-llama", "lr": 3e-3,
              "size": {"vocab": 300, "d_model": 32, "n_head": 2, "n_layer": 2},
              "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}}  # fmt: skip
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
CPU_DDP = REPO / "configs" / "accelerate" / "cpu-ddp.yaml"


def _losses(run: Path) -> list[float]:
    return [json.loads(x)["losses"]["total"] for x in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]


def _two(run: Path, cfg: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*accelerate_launch(CPU_DDP), "train", str(run), "-c", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **(env or {})})


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


ANSWERS = {"answer_examples": True}


RANK0 = {"FSDP_CPU_RAM_EFFICIENT_LOADING": "true"}  # what accelerate launch passes for fsdp_cpu_ram_efficient_loading


@pytest.mark.parametrize(
    ("method", "options", "env"),
    [pytest.param("sft-multi", {}, {}, marks=pytest.mark.slow),  # rank-0 loading below runs the same and more
     pytest.param("sft-multi", ANSWERS, {}, marks=pytest.mark.slow), ("sft-multi", {}, RANK0),
     pytest.param("step-by-step", {}, {}, marks=pytest.mark.slow)],
)  # fmt: skip
def test_fsdp_two_processes_match_one_process(tmp_path, method, options, env):
    """Two students (a full tiny-gpt2, a LoRA tiny-llama with two sharded layers), uneven and empty shards (33
    examples in micro-batches of 8: the last holds 1, so one process joins it at zero weight), greedy dev
    accuracy on the sharded students, the saved best/ and final students gathered whole; sft-multi with gradient
    checkpointing (recomputation gathers each layer again in backward). With ``options.answer_examples`` a shard
    without answer examples (or without the others) runs that part on a stand-in at zero weight. With rank-0
    loading the other process builds both students on the meta device and takes its shards (and the rotary
    buffers) from rank 0."""
    students = [TINY, LLAMA_LORA] if method == "sft-multi" else [LLAMA_LORA]
    n_train = 33 if method == "sft-multi" else 16  # step-by-step: two examples per path
    cfg = write_config(tmp_path / "c.yaml", students, epochs=2, batch_size=8, method=method, engine="fsdp",
                       dev_metric="accuracy", dev_max_new_tokens=4, options=options,
                       gradient_checkpointing=method == "sft-multi")  # fmt: skip
    one = write_add_run(tmp_path / "one", n_train=n_train, n_dev=3, paths_per_q=1)
    two = write_add_run(tmp_path / "two", n_train=n_train, n_dev=3, paths_per_q=1)
    r = run_cli("train", str(one), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    r = _two(two, cfg, env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((two / "logs" / "train_summary.json").read_text())
    assert (summary["processes"], summary["engine"]) == (2, "fsdp")
    assert f"with {method} on 2 processes (fsdp):" in r.stdout  # the console says how it trained
    la, lb = _losses(one), _losses(two)
    assert len(la) == len(lb) >= 4 and all(abs(x - y) < 1e-5 for x, y in zip(la, lb, strict=True))
    for s in students:
        assert _same_weights(one / "students" / s["name"], two / "students" / s["name"])
    dev_a = (one / "logs" / "dev.jsonl").read_text().splitlines()
    dev_b = (two / "logs" / "dev.jsonl").read_text().splitlines()
    assert [json.loads(x)["value"] for x in dev_a] == [json.loads(x)["value"] for x in dev_b]


@pytest.mark.parametrize(
    ("peer_mode", "options"),
    [("hidden", {}), pytest.param("logits", {}, marks=pytest.mark.slow),
     pytest.param("hidden", ANSWERS, marks=pytest.mark.slow)],
)  # fmt: skip
def test_fsdp_qr_distill_two_processes_match_one_process(tmp_path, peer_mode, options):
    """QR-Distill with sharded students: every process forwards every path of its shard whatever the gates, so the
    processes gather the same layers; the router, the peer maps and the competence regressors stay whole. 22 paths
    in micro-batches of 7: the last holds one, so one process joins it at zero weight with nothing added to the
    step's statistics. Losses, routing decisions and saved students equal one process's (which forwards only the
    paths each student took). hidden: a full tiny-gpt2 and a LoRA tiny-llama with two sharded layers, the shared
    peer map calibrated by no-grad forwards before training; logits: two tiny-gpt2 (one tokenizer), token KL, with
    gradient checkpointing."""
    students = [TINY, LLAMA_LORA] if peer_mode == "hidden" else [TINY, {**TINY, "name": "l"}]
    cfg = write_config(tmp_path / "c.yaml", students, epochs=2, batch_size=7, method="qr-distill", engine="fsdp",
                       options={"peer_mode": peer_mode, **options},
                       gradient_checkpointing=peer_mode == "logits")  # fmt: skip
    one = write_add_run(tmp_path / "one", n_train=11, n_dev=0, paths_per_q=2)
    two = write_add_run(tmp_path / "two", n_train=11, n_dev=0, paths_per_q=2)
    ma, mb = _one_and_two(one, two, cfg)
    assert len(ma) == len(mb) >= 8
    assert {"total", "entropy", "mutual", "competence"} <= {k for a in ma for k in a["losses"]}
    for a, b in zip(ma, mb, strict=True):
        assert set(a["losses"]) == set(b["losses"])
        for k, v in a["losses"].items():
            assert abs(v - b["losses"][k]) < 1e-5, (a["step"], k, v, b["losses"][k])
    assert _routes(one) == _routes(two)
    for name in ("s", "l"):
        assert _same_weights(one / "students" / name, two / "students" / name)


def test_fsdp_compact_two_processes_match_one_process(tmp_path):
    """COMPACT (paper variant, L_MCon and S_MI on) with a sharded LoRA student: teacher c is wrong on every third
    question, so its branches continue their own cache with the gold answer, a number of forwards that differs
    between the processes' shards; each process runs as many as the most any runs (stand-ins at zero weight), and
    one gold pass even without a question to pass. 10 questions x 4 branches, 3 questions a micro-batch: the last
    holds one question, so one process joins at zero weight. Losses, every teacher weight and the saved student
    equal one process's."""
    opts = {"warmup_ratio": 0.0, "unfiltered": True, "ppl_ema": True}
    cfg = write_config(tmp_path / "c.yaml", [LLAMA_LORA], method="compact", engine="fsdp", epochs=2, batch_size=12,
                       grad_accum=2, max_length=160, options=opts)  # fmt: skip
    one, two = (write_run(tmp_path / name, ["a", "c"], 2, n=10) for name in ("one", "two"))
    ma, mb = _one_and_two(one, two, cfg)
    assert len(ma) == len(mb) == 4
    for a, b in zip(ma, mb, strict=True):
        assert a["losses"].keys() == b["losses"].keys() >= {"total", "sft", "mcon"}
        assert a["losses"] == pytest.approx(b["losses"], abs=1e-5)
    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys() and len(wa) == 2 * 10 * 2
    # S_cons of a question's branches lie ~1e-4 apart and are z-scored: the sharded forward's float noise (1e-7 in
    # a signal) moves a weight by up to ~5e-5
    assert all(wa[k] == pytest.approx(wb[k], abs=2e-4) for k in wa)
    assert _same_weights(one / "students" / "l", two / "students" / "l")


def _one_and_two(one: Path, two: Path, cfg: Path) -> tuple[list[dict], list[dict]]:
    """Train ``one`` in one process and ``two`` in two sharded ones; their logged steps."""
    r = run_cli("train", str(one), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    r = _two(two, cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((two / "logs" / "train_summary.json").read_text())["engine"] == "fsdp"
    return _metrics(one), _metrics(two)


def _weights(run: Path) -> dict[tuple, float]:
    recs = [json.loads(x) for x in (run / "logs" / "compact_weights.jsonl").read_text().splitlines()]
    return {(r["step"], r["question_id"], r["teacher"]): r["weight"] for r in recs}


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]


def _routes(run: Path) -> list[tuple]:
    recs = [json.loads(x) for x in (run / "logs" / "routing.jsonl").read_text().splitlines()]
    return sorted((r["step"], r["path_id"], r["student"], r["gate"]) for r in recs)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft-multi", "qr-distill", "compact"])
def test_fsdp_resumes_after_a_kill_exactly(tmp_path, method):
    """SIGKILL both processes after step 3 (5 steps an epoch, a checkpoint every 2): the rerun resumes from step
    2's sharded weights and moments, gathered whole into the checkpoint (with QR-Distill's router, peer maps and
    diagnostics, COMPACT's difficulty EMA), and ends where an uninterrupted run ends."""
    students = [TINY, LLAMA_LORA] if method == "qr-distill" else [LLAMA_LORA]
    opts = {"ppl_ema": True} if method == "compact" else {}
    cfg = write_config(tmp_path / "c.yaml", students, method=method, epochs=2, batch_size=8, engine="fsdp",
                       checkpoint_every=2, options=opts)  # fmt: skip
    n, per_q = (40, 1) if method == "sft-multi" else (20, 2)
    whole = write_add_run(tmp_path / "whole", n_train=n, n_dev=3, paths_per_q=per_q)
    cut = write_add_run(tmp_path / "cut", n_train=n, n_dev=3, paths_per_q=per_q)
    assert _two(whole, cfg).returncode == 0
    assert _two(cut, cfg, {"COTDISTILL_TEST_SIGKILL_AT_STEP": "3"}).returncode != 0
    r = _two(cut, cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((cut / "logs" / "train_summary.json").read_text())["resumed_from"] == "step-00000002"
    assert all(abs(x - y) < 1e-6 for x, y in zip(_losses(whole), _losses(cut), strict=True))
    assert _same_weights(whole / "students" / "l", cut / "students" / "l")


def test_fsdp_refuses_what_it_cannot_shard_in_one_line(tmp_path):
    class Plugin:  # a method (a plugin's) that does not say it runs the same forwards on every process
        fsdp_ready = False

    cfg = load_config(write_config(tmp_path / "c.yaml", [TINY], method="sft-multi"))
    with pytest.raises(ConfigError, match=r"method 'sft-multi' runs data-dependent forwards.*engine: ddp"):
        check_fsdp(Plugin, cfg)
    for opts, why in (({"variant": "v1"}, "variant v1 runs data-dependent forwards"),
                      ({"cons_projection": "attention"}, "cons_projection 'attention' calls")):  # fmt: skip
        compact = load_config(write_config(tmp_path / "c.yaml", [TINY], method="compact", options=opts))
        with pytest.raises(ConfigError, match=rf"method 'compact': {why}"):
            check_fsdp(method_spec("compact").load(), compact)
    check_fsdp(method_spec("compact").load(), load_config(write_config(tmp_path / "c.yaml", [TINY], method="compact")))
    two = [TINY, {**TINY, "name": "t"}]
    cached = load_config(write_config(tmp_path / "c.yaml", two, method="qr-distill", options={"closed_loss": "cached"}))
    with pytest.raises(ConfigError, match=r"method 'qr-distill': closed_loss 'cached' skips forwards per process"):
        check_fsdp(method_spec("qr-distill").load(), cached)
    plain = load_config(write_config(tmp_path / "c.yaml", two, method="qr-distill"))
    check_fsdp(method_spec("qr-distill").load(), plain)
    check_fsdp(method_spec("sft-multi").load(), load_config(write_config(tmp_path / "c.yaml", [TINY], options=ANSWERS)))
    placed = load_config(write_config(tmp_path / "c.yaml", [{**TINY, "device": "cpu"}]))
    with pytest.raises(ConfigError, match=r"student 's' sets students\[\]\.device"):
        check_fsdp(method_spec("sft-multi").load(), placed)
    check_fsdp(method_spec("step-by-step").load(), load_config(write_config(tmp_path / "c.yaml", [TINY])))


def test_fsdp_is_chosen_by_the_setting_or_an_accelerate_fsdp_config():
    from accelerate.utils import DistributedType

    assert wants_fsdp("fsdp", DistributedType.MULTI_CPU, 2)
    assert wants_fsdp("auto", DistributedType.FSDP, 2)
    assert not wants_fsdp("auto", DistributedType.MULTI_CPU, 2)
    assert not wants_fsdp("ddp", DistributedType.FSDP, 2)
    assert not wants_fsdp("fsdp", DistributedType.NO, 1)  # one process: nothing to shard across


def test_a_refused_run_under_fsdp_exits_2_with_one_line(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", [TINY], method="compact", engine="fsdp", options={"variant": "v1"})
    run = write_add_run(tmp_path / "run", n_train=8, n_dev=0, paths_per_q=2)
    r = _two(run, cfg)
    assert r.returncode != 0 and re.search(r"exitcode\s*:\s*2 ", r.stderr)  # each process exits 2; the launcher 1
    assert "train.engine fsdp: method 'compact': variant v1 runs data-dependent forwards" in r.stderr
    assert not (run / "logs" / "train_metrics.jsonl").exists()


def test_fsdp_on_cpu_fixes_glibcs_mmap_threshold_unless_the_user_set_one(monkeypatch):
    import platform

    from cotdistill.training.sharding import return_freed_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4096")
    assert return_freed_memory() is False  # the user's setting stands
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert return_freed_memory() is (platform.libc_ver()[0] == "glibc")


def test_rank0_loading_needs_the_fsdp_engine(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from cotdistill.errors import CotdistillError
    from cotdistill.training.engines import choose

    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "true")
    acc = SimpleNamespace(distributed_type=DistributedType.MULTI_GPU, num_processes=2, print=print)
    spec = method_spec("sft-multi").load()
    with pytest.raises(CotdistillError, match="reads the students' weights on rank 0 only.*train.engine: fsdp"):
        choose(acc, spec, load_config(write_config(tmp_path / "c.yaml", [TINY], engine="ddp")))
    assert choose(acc, spec, load_config(write_config(tmp_path / "c.yaml", [TINY], engine="fsdp"))) is True
