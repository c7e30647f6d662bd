"""Eval generation throughput on a real student: bf16 against fp32, side by side, on SmolLM2-135M-Instruct.

Three sides: ``fp32`` (fp32 weights, no autocast), ``autocast`` (fp32 weights under bf16 autocast, which casts
every weight again on every forward pass, i.e. on every generated token) and ``bf16`` (a copy of the model with its
weights cast to bf16 once, what ``cotdistill eval`` runs with ``eval.bf16`` on).

Both sides answer the same real SVAMP test questions (``../shared/data/mcckd-dev/svamp-dev.json``) with the same
prompt (the core prompt in the student's chat template), greedy, through ``cotdistill.evaluation.answer_questions``
(what ``cotdistill eval`` runs); the sides alternate per repeat. Prints tokens/s of each side, the ratio, and how
many answers agree.

    PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/bench_eval_bf16.py --questions 48 --repeats 2
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from cotdistill.config import StudentConfig
from cotdistill.evaluation import answer_questions
from cotdistill.records import Question
from cotdistill.students import build_student

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "mcckd-dev" / "svamp-dev.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--new", type=int, default=128, help="max new tokens")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = json.loads(DEV.read_text(encoding="utf-8"))[: a.questions]
    qs = [Question(id=f"d{i}", task="math", question=r["instruction"].strip(), gold=r["label"], split="test")
          for i, r in enumerate(rows)]  # fmt: skip
    built = build_student(StudentConfig(name="smol", kind="gguf", path="smollm2"))
    model, tok = built.model.eval(), built.tokenizer
    half = copy.deepcopy(model).to(torch.bfloat16)
    models = {"fp32": model, "autocast": model, "bf16": half}
    answer_questions(model, tok, qs[:2], 8, 2)  # warm-up
    answer_questions(half, tok, qs[:2], 8, 2)
    rates: dict[str, list[float]] = {side: [] for side in models}
    answers: dict[str, list[str | None]] = {}
    for r in range(a.repeats):
        for side in list(models) if r % 2 == 0 else list(models)[::-1]:
            t0 = time.perf_counter()
            out = answer_questions(models[side], tok, qs, a.new, a.batch, "core", bf16=side == "autocast")
            dt = time.perf_counter() - t0
            tokens = sum(x.generation.n_tokens for x in out)
            rates[side].append(tokens / dt)
            answers[side] = [x.answer for x in out]
            acc = sum(x.correct for x in out) / len(out)
            print(f"repeat {r} {side}: {tokens} tokens in {dt:.1f} s = {tokens / dt:.1f} tok/s, accuracy {acc:.3f}")
    f32 = statistics.median(rates["fp32"])
    for side in ("autocast", "bf16"):
        med = statistics.median(rates[side])
        same = sum(x == y for x, y in zip(answers["fp32"], answers[side], strict=True))
        print(
            f"median {side}: {med:.1f} tok/s against fp32 {f32:.1f} tok/s = {med / f32:.2f}x (goal >= 1.5x); "
            f"answers identical to fp32 on {same}/{len(qs)} questions"
        )


if __name__ == "__main__":
    main()
