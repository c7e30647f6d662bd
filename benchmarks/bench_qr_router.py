"""Does QR-Distill's router learn its signal? Short runs under router parametrisations, logged side by side.

``planted``: two tiny students (a GPT-2 and a Llama, different tokenizers), each first warmed up on its own style
(student 0 on ``cot``, student 1 on ``program``; ``vanilla`` is neutral), then a short QR-Distill run
(``tests/qr_students.py:run_method``, the shared loop in miniature). ``lab``: the real loop (``cotdistill
train``) on a small lab run (``tests/qr_lab.py``), two fresh tiny students, no planted preference.

Per variant and epoch: per student the std of the gate probability over the epoch's paths (its spread), the
Spearman correlation between a gate's probability and the student's centred loss on the path (negative: the
router learned its signal), the fallback rate, and (planted) the selection rate without fallbacks on the two
planted styles. Variants are ``name:key=value,key=value`` over ``train.options``.

    PYTHONPATH=src python benchmarks/bench_qr_router.py planted --epochs 6
    PYTHONPATH=src python benchmarks/bench_qr_router.py planted --variant old:module_lr=1e-4,router_input=raw,\
router_signal=raw
    PYTHONPATH=src python benchmarks/bench_qr_router.py lab --epochs 4 --train 24
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402
import yaml  # noqa: E402

DEFAULT_VARIANTS = [
    "old:module_lr=1e-4,router_input=raw,router_signal=raw",
    "old-lr1e-2:module_lr=1e-2,router_input=raw,router_signal=raw",
    "std-1e-4:module_lr=1e-4",
    "std-1e-3:module_lr=1e-3",
    "std-1e-2:module_lr=1e-2",
    "default:",
]


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        opts[k] = yaml.safe_load(v)
    return name, opts


def _planted_students(seed: int):
    from cotdistill.training.methods.base import Example
    from qr_students import PLANTED, TinyStudent, make_model, make_tokenizer, planted_data, warm_up

    questions, paths = planted_data()
    students = []
    for i, kind in enumerate(["gpt2", "llama"]):
        tok = make_tokenizer(300 + 40 * i)
        students.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=seed + i, d=32), tok))
    for st, style in zip(students, PLANTED, strict=True):
        own = [Example(questions[p.question_id], questions[p.question_id].question, p.text, path=p)
               for p in paths if p.style == style]  # fmt: skip
        warm_up(st, own, seed=seed)
    return questions, paths, students


def run_planted(variants: list[str], epochs: int, seed: int, student_lr: float) -> list[dict]:
    from cotdistill.config import RunConfig
    from cotdistill.rundir import RunDir
    from cotdistill.training.methods.qr_distill.method import QRDistill
    from qr_students import PLANTED, run_method

    questions, paths, warmed = _planted_students(seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in variants:
            name, opts = parse_variant(text)
            students = copy.deepcopy(warmed)
            cfg = RunConfig(seed=seed, prompt="bare", train={"method": "qr-distill", "options": opts})
            m = QRDistill(cfg, students, RunDir.at(Path(tmp)))
            ex = m.examples(questions, paths)
            t0 = time.perf_counter()
            recs = run_method(m, students, ex, epochs=epochs, student_lr=student_lr, seed=seed)
            for e in range(epochs):
                row = {"variant": name, "epoch": e}
                for r in recs:
                    if r["epoch"] != e:
                        continue
                    k = "s0" if r["student"].startswith("s0") else "s1"
                    if r["kind"] == "student":
                        row[f"{k}_std"], row[f"{k}_rho"] = r["prob_std"], r["spearman"]
                        row["fallback"] = r["fallback_rate"]
                    elif r["style"] in PLANTED:
                        row[f"{k}_{r['style']}"] = r["rate_no_fallback"]
                rows.append(row)
            rows[-1]["seconds"] = round(time.perf_counter() - t0, 1)
    return rows


def run_lab(variants: list[str], epochs: int, seed: int, n_train: int) -> list[dict]:
    from cotdistill.config import load_config
    from cotdistill.stages.train import train
    from qr_lab import make_lab_run, two_student_config

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in variants:
            name, opts = parse_variant(text)
            run = make_lab_run(Path(tmp) / name, n_train=n_train, n_dev=2, seed=seed)
            cfg_path = two_student_config(run, epochs=epochs, batch_size=8, options={**opts, "log_routing": False})
            t0 = time.perf_counter()
            train(run, load_config(cfg_path, [f"seed={seed}"]), resume=False)
            for line in (run.logs / "routing_rates.jsonl").read_text().splitlines():
                r = json.loads(line)
                if r.get("kind") == "student":
                    rows.append({"variant": name, "epoch": r["epoch"], "student": r["student"], "std": r["prob_std"],
                                 "rho": r["spearman"], "fallback": r["fallback_rate"],
                                 "rate_no_fb": r["rate_no_fallback"]})  # fmt: skip
            rows[-1]["seconds"] = round(time.perf_counter() - t0, 1)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["planted", "lab"])
    ap.add_argument("--variant", action="append", help="name:key=value,... (repeatable; default: a fixed grid)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--student-lr", type=float, default=1e-3, help="planted: the students' learning rate")
    ap.add_argument("--train", type=int, default=24, help="lab: train questions")
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = args.variant or DEFAULT_VARIANTS
    if args.mode == "planted":
        rows = run_planted(variants, args.epochs, args.seed, args.student_lr)
    else:
        rows = run_lab(variants, args.epochs, args.seed, args.train)
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
