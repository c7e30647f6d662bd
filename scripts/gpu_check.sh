#!/usr/bin/env bash
# GPU check: the CUDA paths of cotdistill in one short run, one summary line per check (PASS/FAIL/SKIP).
#   sh scripts/gpu_check.sh            # from the repository root, with the venv's python first on PATH
# Checks: CUDA and bf16; a two-student QR-Distill step with each student on the GPU; a COMPACT step; eval
# generation under bf16 autocast; QLoRA (4-bit NF4 through bitsandbytes' CUDA kernels); peak GPU memory.
# Tiny config-built models, so it needs no download and takes well under a minute. Nothing depends on it.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
HF_HUB_OFFLINE=1 PYTHONPATH=src "$PY" - <<'EOF'
import sys, tempfile, time, traceback
from pathlib import Path

sys.path.insert(0, "tests")
import torch

results = []


def check(name):
    def deco(fn):
        t0 = time.perf_counter()
        try:
            msg = fn() or ""
            results.append(("PASS", name, msg))
        except SkipCheck as e:
            results.append(("SKIP", name, str(e)))
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            results.append(("FAIL", name, f"{type(e).__name__}: {e}".splitlines()[0][:200]))
            traceback.print_exc()
        print(f"{results[-1][0]} {name} ({time.perf_counter() - t0:.1f}s) {results[-1][2]}", flush=True)
        return fn
    return deco


class SkipCheck(Exception):
    pass


def need_cuda():
    if not torch.cuda.is_available():
        raise SkipCheck("no CUDA device")


@check("cuda")
def _():
    need_cuda()
    return f"{torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}, torch {torch.__version__}"


def tiny_train(method, students, tmp, **train):
    from cotdistill.config import load_config
    from cotdistill.rundir import RunDir
    from cotdistill.stages.train import train as run_train
    from trainutil import write_add_run, write_config

    root = write_add_run(Path(tmp) / method, n_train=16, n_dev=0)
    cfg = load_config(write_config(Path(tmp) / f"{method}.yaml", students, epochs=1, batch_size=8, method=method,
                                   bf16="auto", **train))
    torch.cuda.reset_peak_memory_stats()
    s = run_train(RunDir.at(root), cfg)
    return f"{s['steps']} steps, {s['tokens_per_s']:,.0f} tok/s, bf16 {s['bf16']}, peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"


LLAMA = {"kind": "preset", "preset": "tiny-llama", "lr": 3e-3,
         "size": {"vocab": 300, "d_model": 64, "n_head": 4, "n_kv_head": 2, "d_ff": 128, "n_layer": 2, "n_positions": 256}}


@check("qr-distill step, each student on the GPU")
def _():
    need_cuda()
    with tempfile.TemporaryDirectory() as tmp:
        students = [{**LLAMA, "name": "a", "device": "cuda:0"}, {**LLAMA, "name": "b", "device": "cuda:0"}]
        return tiny_train("qr-distill", students, tmp, options={"encoder": "minilm"})


@check("compact step")
def _():
    need_cuda()
    with tempfile.TemporaryDirectory() as tmp:
        return tiny_train("compact", [{**LLAMA, "name": "s"}], tmp)


@check("eval generation (bf16)")
def _():
    need_cuda()
    from cotdistill.config import StudentConfig
    from cotdistill.evaluation import answer_questions
    from cotdistill.records import Question
    from cotdistill.students import build_student

    b = build_student(StudentConfig(name="s", **LLAMA), [f"What is {i} + 1? {i + 1}" for i in range(50)])
    qs = [Question(id=f"q{i}", task="math", question=f"What is {i} + 1?", gold=str(i + 1)) for i in range(32)]
    t0 = time.perf_counter()
    out = answer_questions(b.model.to("cuda"), b.tokenizer, qs, 32, 16, "bare", bf16=True)
    n = sum(a.generation.n_tokens for a in out)
    return f"{n} tokens in {time.perf_counter() - t0:.2f}s"


@check("qlora (4-bit nf4) step")
def _():
    need_cuda()
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise SkipCheck("bitsandbytes not installed") from None
    from test_scale import _tiny_hf_llama

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        _tiny_hf_llama(base)
        student = {"name": "q", "kind": "hf", "path": str(base), "lr": 5e-3, "lora": {"r": 4, "alpha": 8},
                   "quantization": {}}
        return tiny_train("sft-multi", [student], tmp)


@check("peak memory")
def _():
    need_cuda()
    return f"max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB, reserved {torch.cuda.max_memory_reserved() / 2**20:.0f} MiB"


print("SUMMARY " + ", ".join(f"{name}: {status}" for status, name, _ in results))
sys.exit(1 if any(s == "FAIL" for s, _, _ in results) else 0)
EOF
