"""Training throughput: cotdistill's loop vs TRL's SFTTrainer, same model, data, batch and precision.

The model is a tiny ``tiny-gpt2`` preset (default) or, with ``--student smollm2``, SmolLM2-135M-Instruct from the
offline GGUF with LoRA (r 16, alpha 32, every linear layer), the real-data track's student.

Both train one epoch over the same (prompt, completion) examples from the same initial weights with the same
batch size, dynamic padding and loss on completion tokens only. Tokens/s counts the examples' real tokens
(prompt + completion, no padding) over the wall time of the training call; runs alternate A/B/A/B so machine
load hits both sides alike, and the median ratio is printed.

It also measures this machine's dense matmul peak in the same precision (square matmuls, best of several) and
prints each side's model FLOP/s as a fraction of it (model FLOPs: 6 x parameters per token for forward and
backward, plus the attention score and value matmuls, 12 x layers x d_model x mean sequence length per token).

    PYTHONPATH=src python benchmarks/bench_train_vs_trl.py [--examples 640] [--batch 16] [--repeats 2] [--fp32]
    PYTHONPATH=src python benchmarks/bench_train_vs_trl.py --student smollm2 --examples 64 --batch 8 --max-length 320
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SVAMP = REPO.parent / "shared" / "data" / "svamp-multipath" / "train.json"


def make_run(root: Path, n_examples: int) -> Path:
    """A run dir with ``n_examples`` kept paths: the real SVAMP paths when present, else arithmetic paths."""
    from cotdistill.io import atomic_write_jsonl
    from cotdistill.records import Question, path_id, read_paths
    from cotdistill.records import ReasoningPath as PathRec

    run = root / "run"
    if SVAMP.exists():
        from cotdistill.sources.importers import ImportOptions, run_import

        run_import("mcc-kd", SVAMP, run, ImportOptions())
        paths = [p for _, p in zip(range(n_examples), read_paths(run / "paths.jsonl"), strict=False)]
        for p in paths:
            p.checks = {"kept": True}
        atomic_write_jsonl(run / "filtered.jsonl", paths)
        return run
    qs, ps = [], []
    for i in range(n_examples):
        a, b, c = i % 17 + 2, i % 13 + 3, i % 7 + 1
        q = Question(id=f"q{i}", task="math", question=f"Tom has {a} apples, buys {b} more and eats {c}. How many?",
                     gold=str(a + b - c))  # fmt: skip
        qs.append(q)
        text = f"Tom starts with {a}. {a} + {b} = {a + b}. Then {a + b} - {c} = {a + b - c}. The answer is {a + b - c}."
        ps.append(PathRec(id=path_id(q.id, "t", "cot", 0), question_id=q.id, teacher="t", style="cot", text=text,
                          checks={"kept": True}))  # fmt: skip
    run.mkdir(parents=True)
    atomic_write_jsonl(run / "questions.jsonl", qs)
    atomic_write_jsonl(run / "filtered.jsonl", ps)
    return run


def matmul_peak(bf16: bool, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` dense ``n x n`` matmuls, in bf16 (as autocast runs them) or fp32."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def model_flops_per_token(model: torch.nn.Module, mean_len: float) -> float:
    """Training FLOPs per token: 6 x trained and 4 x frozen matmul parameters (a frozen weight still takes the
    forward and the input-gradient matmul, not the weight gradient; LoRA freezes the base) + attention (12 x
    layers x d x mean length). Embedding tables are lookups, not matmuls, unless tied to the LM head."""
    cfg = model.config
    head = model.get_output_embeddings()
    lookups = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding) and (head is None or m.weight is not head.weight)
    }
    params = [p for p in model.parameters() if id(p) not in lookups]
    trained = sum(p.numel() for p in params if p.requires_grad)
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    layers = getattr(cfg, "n_layer", None) or cfg.num_hidden_layers
    d = getattr(cfg, "n_embd", None) or cfg.hidden_size
    return 6 * trained + 4 * frozen + 12 * layers * d * mean_len


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=640)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="fp32 on both sides (default: bf16 autocast on both)")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--student", choices=["preset", "smollm2"], default="preset")
    ap.add_argument("--max-length", type=int, default=1024, help="examples longer than this are dropped (both sides)")
    ap.add_argument(
        "--trl-checkpointing",
        action="store_true",
        help="keep TRL's default gradient checkpointing (recomputes activations: not the same work)",
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.disable(logging.WARNING)

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from cotdistill.config import RunConfig
    from cotdistill.rundir import RunDir
    from cotdistill.stages.train import train
    from cotdistill.students import build_student
    from cotdistill.students.encoding import encode
    from cotdistill.students.prompt import question_prompt, render_prompt, render_response
    from cotdistill.training.data import load_train_data, tokenizer_texts

    bf16 = not args.fp32
    tmp = Path(tempfile.mkdtemp(prefix="bench-trl-"))
    run = make_run(tmp, args.examples)
    data = load_train_data(RunDir.at(run))
    size = {"d_model": args.d_model, "n_layer": args.layers, "n_head": 4, "d_ff": 4 * args.d_model, "vocab": 2000}
    student = {"name": "s", "kind": "preset", "preset": "tiny-gpt2", "size": size, "lr": 1e-3}
    if args.student == "smollm2":
        student = {"name": "s", "kind": "gguf", "path": "smollm2", "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
                   "lr": 3e-4}  # fmt: skip
    cfg = RunConfig.model_validate(
        {"seed": 0, "students": [student], "train": {"epochs": 1, "batch_size": args.batch, "bf16": bf16,
         "trackers": [], "max_length": args.max_length, "warmup_ratio": 0.0, "checkpoint_every": 0,
         "answer_sentence": False}}
    )  # fmt: skip
    torch.manual_seed(0)
    built = build_student(cfg.students[0], list(tokenizer_texts(data)), run / "cache" / "tokenizers")
    tok, init_state = built.tokenizer, {k: v.clone() for k, v in built.model.state_dict().items()}
    rows = []
    for p in data.train_paths:
        q = data.train_questions[p.question_id]
        prompt = question_prompt(q, cfg.prompt)
        n = len(encode(tok, prompt, p.text))
        if n <= args.max_length:
            rows.append((prompt, p.text, n))
    n_tokens = sum(r[2] for r in rows)
    flops_per_token = model_flops_per_token(built.model, n_tokens / len(rows))
    ds = Dataset.from_list(
        [{"prompt": render_prompt(tok, pr), "completion": render_response(tok, pr, tg)} for pr, tg, _ in rows]
    )

    def ours() -> float:
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
        s = train(RunDir.at(run), cfg, resume=False)
        return n_tokens / s["seconds"]

    def trl() -> float:
        model = build_student(cfg.students[0], list(tokenizer_texts(data)),
                              run / "cache" / "tokenizers").model  # fmt: skip
        model.load_state_dict(init_state)
        sc = SFTConfig(
            output_dir=str(tmp / "trl"), per_device_train_batch_size=args.batch, num_train_epochs=1,
            learning_rate=student["lr"], lr_scheduler_type="cosine", max_grad_norm=1.0, bf16=bf16, use_cpu=True,
            logging_steps=10_000, save_strategy="no", report_to=[], max_length=args.max_length,
            completion_only_loss=True, dataloader_num_workers=0, seed=0, disable_tqdm=True,
            gradient_checkpointing=args.trl_checkpointing,  # TRL 1.x defaults to True; cotdistill does not recompute
        )  # fmt: skip
        trainer = SFTTrainer(model=model, args=sc, train_dataset=ds, processing_class=tok)
        t0 = time.perf_counter()
        trainer.train()
        return n_tokens / (time.perf_counter() - t0)

    results: dict[str, list[float]] = {"cotdistill": [], "trl": []}
    for r in range(args.repeats):
        for name, fn in (("cotdistill", ours), ("trl", trl)):
            tps = fn()
            results[name].append(tps)
            print(f"repeat {r}: {name:10s} {tps:10,.0f} tokens/s", flush=True)
    peak = matmul_peak(bf16)
    print(f"dense matmul peak ({'bf16' if bf16 else 'fp32'}, 2048^3): {peak / 1e9:,.1f} GFLOP/s", flush=True)
    mfu = {k: [t * flops_per_token / peak for t in v] for k, v in results.items()}
    for k, v in mfu.items():
        print(f"{k:10s} model FLOP/s / peak: " + ", ".join(f"{x:.1%}" for x in v), flush=True)
    ratios = [a / b for a, b in zip(results["cotdistill"], results["trl"], strict=True)]
    med, best_mfu = statistics.median(ratios), max(mfu["cotdistill"])
    print(f"tokens/s cotdistill / TRL (median): {med:.2f}  (goal >= 1.3 -> {'PASS' if med >= 1.3 else 'FAIL'})")
    print(f"cotdistill model FLOP/s / peak (best): {best_mfu:.1%}  (goal >= 60% -> "
          f"{'PASS' if best_mfu >= 0.6 else 'FAIL'})")  # fmt: skip
    out = {
        "examples": len(rows), "tokens": n_tokens, "batch": args.batch, "precision": "bf16" if bf16 else "fp32",
        "model": "SmolLM2-135M-Instruct + LoRA r16" if args.student == "smollm2"
        else f"tiny-gpt2 d_model={args.d_model} layers={args.layers}",
        "data": "svamp" if SVAMP.exists() else "synthetic",
        "cotdistill_tokens_per_s": results["cotdistill"], "trl_tokens_per_s": results["trl"],
        "ratio_median": med, "trl_gradient_checkpointing": args.trl_checkpointing,
        "torch_threads": torch.get_num_threads(),
        "flops_per_token": flops_per_token, "matmul_peak_flops": peak, "mfu": mfu,
    }  # fmt: skip
    print(json.dumps(out, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
