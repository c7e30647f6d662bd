"""Peak training memory of SmolLM2-135M-Instruct + LoRA with and without gradient checkpointing, per sequence length.

Each (sequence length, checkpointing) cell runs in its own subprocess: it builds the student as ``cotdistill
train`` does (the offline GGUF, LoRA r 16 on every linear layer), turns checkpointing on with the same call the
loop makes (``activation_checkpointing_enable``, non-reentrant), then takes ``--steps`` seeded AdamW steps on the
same random token batches in bf16 autocast. A thread samples the process's resident memory every 2 ms; the
figure is the peak during the steps minus the resident memory just before them (weights and optimizer set-up are
in the baseline, activations and gradients are what is measured). The losses of both settings are printed side by
side: recomputation must not change them beyond bf16 rounding.

    PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/bench_grad_checkpointing.py --lengths 128,256,512 --batch 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cell(length: int, batch: int, steps: int, checkpointing: bool) -> dict:
    """One measurement in this process: peak resident memory over ``steps`` steps above the pre-step baseline."""
    import gc

    import torch

    from cotdistill.config import StudentConfig
    from cotdistill.students import build_student

    torch.manual_seed(0)
    sc = StudentConfig(name="s", kind="gguf", path="smollm2", lora={"r": 16, "alpha": 32, "dropout": 0.0})
    model = build_student(sc).model
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(10, 40000, (batch, length), generator=gen) for _ in range(steps)]
    gc.collect()
    base, peak, stop = rss(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    losses, t0 = [], time.perf_counter()
    for ids in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 5))
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    return {"length": length, "checkpointing": checkpointing, "peak_mib": (peak[0] - base) / 2**20,
            "baseline_mib": base / 2**20, "losses": losses, "seconds": seconds}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="128,256,512")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.cell:
        length, ck = a.cell.split(":")
        print(json.dumps(cell(int(length), a.batch, a.steps, ck == "1")))
        return
    print(f"SmolLM2-135M-Instruct + LoRA r16, batch {a.batch}, {a.steps} AdamW steps, bf16 autocast, CPU")
    print("| length | peak over baseline, off (MiB) | on (MiB) | on/off | step s off | on | max loss diff |")
    print("|---|---|---|---|---|---|---|")
    for length in [int(x) for x in a.lengths.split(",")]:
        res = {}
        for ck in (0, 1):
            cmd = [
                sys.executable,
                __file__,
                "--cell",
                f"{length}:{ck}",
                "--batch",
                str(a.batch),
                "--steps",
                str(a.steps),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res[ck] = json.loads(out.strip().splitlines()[-1])
        off, on = res[0], res[1]
        diff = max(abs(x - y) for x, y in zip(off["losses"], on["losses"], strict=True))
        print(f"| {length} | {off['peak_mib']:.0f} | {on['peak_mib']:.0f} | {on['peak_mib'] / off['peak_mib']:.2f} | "
              f"{off['seconds'] / a.steps:.1f} | {on['seconds'] / a.steps:.1f} | {diff:.4f} |", flush=True)  # fmt: skip
        print(f"  losses off {off['losses']} on {on['losses']}", flush=True)


if __name__ == "__main__":
    main()
