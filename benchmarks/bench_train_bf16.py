"""Training throughput on a real student: bf16 autocast against fp32, side by side, on SmolLM2-135M-Instruct.

What ``train.bf16: auto`` should pick on this CPU. Each side builds the student as ``cotdistill train`` does (the
offline GGUF; LoRA r 16 on every linear layer, or full fine-tuning with ``--full``) and takes ``--steps`` seeded
AdamW steps on the same random token batches; the sides alternate per repeat, after one untimed warm-up step
each. Prints the CPU's capability (AVX2, AVX512, AVX512-BF16, AMX), tokens/s of each side, their ratio, and the
first step's loss of each (bf16 rounding only).

    PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/bench_train_bf16.py --batch 4 --length 256 --steps 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cotdistill.config import StudentConfig
from cotdistill.students import build_student
from cotdistill.training.loop import cpu_has_fast_bf16


def capability() -> str:
    """The CPU features that decide how fast bf16 matmuls run here."""
    feats = {
        "avx512": torch.cpu._is_avx512_supported(),
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
        "amx": torch.cpu._is_amx_tile_supported(),
    }
    have = [k for k, v in feats.items() if v] or ["avx2 only"]
    return f"{torch.backends.cpu.get_cpu_capability()} ({', '.join(have)}); fast bf16: {cpu_has_fast_bf16()}"


def timed_steps(model, opt, batches: list[torch.Tensor], bf16: bool) -> tuple[float, float]:
    """Seconds for the steps over ``batches`` and the first loss."""
    first, t0 = None, time.perf_counter()
    for ids in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        first = loss.item() if first is None else first
    return time.perf_counter() - t0, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lora = None if a.full else {"r": 16, "alpha": 32, "dropout": 0.0}
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(10, 40000, (a.batch, a.length), generator=gen) for _ in range(a.steps)]
    sides = {}
    for name in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_student(StudentConfig(name="s", kind="gguf", path="smollm2", lora=lora)).model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        timed_steps(model, opt, batches[:1], name == "bf16")  # warm-up: kernels, allocator
        sides[name] = {"model": model, "opt": opt, "rates": [], "loss": None}
    tokens = a.batch * a.length * a.steps
    for _ in range(a.repeats):
        for name, s in sides.items():
            sec, loss = timed_steps(s["model"], s["opt"], batches, name == "bf16")
            s["rates"].append(tokens / sec)
            s["loss"] = s["loss"] if s["loss"] is not None else loss
    print(f"cpu: {capability()}; torch {torch.__version__}, {a.threads} threads")
    print(f"SmolLM2-135M {'full fine-tuning' if a.full else 'LoRA r16'}, batch {a.batch} x {a.length} tokens, "
          f"{a.steps} steps x {a.repeats} repeats per side")  # fmt: skip
    for name, s in sides.items():
        rates = ", ".join(f"{r:.1f}" for r in s["rates"])
        print(f"  {name}: {statistics.median(s['rates']):8.1f} tokens/s ({rates}); first loss {s['loss']:.4f}")
    ratio = statistics.median(sides["bf16"]["rates"]) / statistics.median(sides["fp32"]["rates"])
    print(f"bf16 autocast / fp32 throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
