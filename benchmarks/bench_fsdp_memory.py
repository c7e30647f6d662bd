"""Peak memory per process of ``cotdistill train`` under DDP and FSDP2: SmolLM2-135M-Instruct, 2 CPU processes.

For each engine (``train.engine: ddp`` / ``fsdp``) and each student setting (full fine-tuning, where AdamW's two
moments and the gradients are three more copies of the weights; LoRA r 16, where only the frozen base weights are
sharded; ``qr-full``: QR-Distill with two fully fine-tuned SmolLM2 students), the real loop runs under
``torch.distributed.run`` with 2 gloo processes on the same small run (single-digit additions, one path each).
Each process records its peak resident memory (``VmHWM``) twice: at the end of the loop's set-up (the students
loaded whole on every process, then sharded under FSDP; the optimizer built) and, after resetting the mark there,
at exit (the steps, the checkpoint and the save, for which rank 0 gathers each student into an unsharded copy
under FSDP). The step losses of both engines are printed side by side: sharding must not change them.

    PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/bench_fsdp_memory.py --steps 4 [--settings full,lora,qr-full]
        [--mmap-threshold 1048576] [--fp32] [--rank0-loading]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FULL = {"name": "smol", "kind": "gguf", "path": "smollm2", "lr": 1e-5}
LORA = {**FULL, "lr": 3e-4, "lora": {"r": 16, "alpha": 32, "dropout": 0.0}}
SETTINGS = {  # setting -> (students, method)
    "full": ([FULL], "sft-multi"),
    "lora": ([LORA], "sft-multi"),
    "qr-full": ([{**FULL, "name": "smol-a"}, {**FULL, "name": "smol-b", "lr": 2e-5}], "qr-distill"),
}


def write_run(root: Path, n: int) -> None:
    """``n`` train questions ``What is A + B?``, one kept path each."""
    from cotdistill.io import atomic_write_jsonl
    from cotdistill.records import Question, ReasoningPath, path_id

    qs, ps = [], []
    for i in range(n):
        a, b = i % 10, (3 * i + 1) % 10
        q = Question(id=f"q{i}", task="math", question=f"What is {a} + {b}?", gold=str(a + b), split="train")
        qs.append(q)
        text = f"We add {a} and {b}: {a} + {b} = {a + b}. The answer is {a + b}."
        ps.append(ReasoningPath(id=path_id(q.id, "t", "cot", 0), question_id=q.id, teacher="t", style="cot",
                                sample=0, text=text, answer=str(a + b), checks={"kept": True}))  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(root / "questions.jsonl", qs)
    atomic_write_jsonl(root / "filtered.jsonl", ps)


def peak_mib() -> float:
    """This process's peak resident memory so far (``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(run: Path, config: Path) -> None:
    """One process of the distributed run: train, then write to ``run/mem-<rank>.json`` its peak memory while the
    students load (up to the end of the loop's set-up) and its peak from then to exit (training and the save)."""
    import gc

    from cotdistill.config import load_config
    from cotdistill.rundir import RunDir
    from cotdistill.stages.train import train
    from cotdistill.training import loop

    rank, marks = int(os.environ.get("RANK", "0")), {}
    setup = loop.Trainer._setup

    def measured_setup(self: loop.Trainer, data: object) -> None:
        setup(self, data)
        gc.collect()
        marks["load"] = peak_mib()
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from the resident size now

    payload = loop.Trainer._checkpoint_payload

    def measured_payload(self: loop.Trainer) -> dict:
        marks.setdefault("steps", peak_mib())  # the first checkpoint: the steps before it are done
        return payload(self)

    loop.Trainer._setup = measured_setup  # type: ignore[method-assign]
    loop.Trainer._checkpoint_payload = measured_payload  # type: ignore[method-assign]
    out = run / f"mem-{rank}.json"
    atexit.register(lambda: out.write_text(json.dumps({**marks, "train": peak_mib()})))
    train(RunDir.at(run), load_config(config))


def cell(root: Path, setting: str, engine: str, steps: int, batch: int, mmap_threshold: int, bf16: bool,
         rank0: bool = False) -> dict:  # fmt: skip
    """One (student setting, engine) run under ``torch.distributed.run``: each rank's peak and the step losses."""
    import yaml

    run = root / f"{setting}-{engine}"
    write_run(run, steps * batch)
    students, method = SETTINGS[setting]
    cfg = {"seed": 0, "students": students, "prompt": "bare",
           "train": {"method": method, "engine": engine, "epochs": 1, "batch_size": batch, "trackers": [],
                     "bf16": bf16, "dev_metric": "loss", "max_length": 128}}  # fmt: skip
    config = root / f"{setting}-{engine}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if mmap_threshold:  # a fixed threshold: freed large blocks go back to the system instead of staying resident
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    if rank0:  # Accelerate's fsdp_cpu_ram_efficient_loading: rank 1 builds on the meta device
        env["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "true"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", __file__, "--worker", str(run),
           "--config", str(config)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    mem = [json.loads((run / f"mem-{r}.json").read_text()) for r in (0, 1)]
    lines = (run / "logs" / "train_metrics.jsonl").read_text().splitlines()
    summary = json.loads((run / "logs" / "train_summary.json").read_text())
    return {"load": [m["load"] for m in mem], "steps": [m["steps"] for m in mem], "train": [m["train"] for m in mem],
            "losses": [round(json.loads(x)["losses"]["total"], 5) for x in lines],
            "seconds": summary["seconds"], "engine": summary["engine"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4, help="global micro-batch (2 examples per process)")
    ap.add_argument("--settings", default="full,lora", help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--mmap-threshold", type=int, default=0,
                    help="bytes: glibc's MALLOC_MMAP_THRESHOLD_ for the processes (0: glibc's default)")  # fmt: skip
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    ap.add_argument("--rank0-loading", action="store_true", help="FSDP: only rank 0 reads the weights")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(Path(a.worker), Path(a.config))
        return
    precision = "fp32" if a.fp32 else "bf16 autocast"
    threshold = a.mmap_threshold or "unset (FSDP processes fix it at 1 MiB themselves)"
    loading = ", FSDP weights read by rank 0 only" if a.rank0_loading else ""
    print(f"SmolLM2-135M-Instruct, 2 CPU processes (gloo), {a.steps} steps of {a.batch} examples, {precision}, "
          f"MALLOC_MMAP_THRESHOLD_ {threshold}{loading}")  # fmt: skip
    print("peak resident MiB per process, rank 0 / rank 1: loading (to the end of set-up); the steps (to the first")
    print("checkpoint); steps + checkpoint + save (to exit)")
    print("| student | engine | load | steps | to exit | steps FSDP/DDP r0 / r1 | to exit | train s | loss diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    two = lambda v: f"{v[0]:.0f} / {v[1]:.0f}"  # noqa: E731
    ratio = lambda f, d, k: f"{f[k][0] / d[k][0]:.2f} / {f[k][1] / d[k][1]:.2f}"  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        for setting in a.settings.split(","):
            ddp = cell(Path(tmp), setting, "ddp", a.steps, a.batch, a.mmap_threshold, not a.fp32)
            fsdp = cell(Path(tmp), setting, "fsdp", a.steps, a.batch, a.mmap_threshold, not a.fp32, a.rank0_loading)
            assert (ddp["engine"], fsdp["engine"]) == ("ddp", "fsdp")
            diff = max(abs(x - y) for x, y in zip(ddp["losses"], fsdp["losses"], strict=True))
            for name, r in (("DDP", ddp), ("FSDP", fsdp)):
                ratios = f"{ratio(fsdp, ddp, 'steps')} | {ratio(fsdp, ddp, 'train')}" if r is fsdp else " | "
                print(f"| {setting} | {name} | {two(r['load'])} | {two(r['steps'])} | {two(r['train'])} | {ratios} | "
                      f"{r['seconds']:.1f} | {diff:.5f} |", flush=True)  # fmt: skip
            print(f"  losses ddp {ddp['losses']} fsdp {fsdp['losses']}", flush=True)


if __name__ == "__main__":
    main()
