"""COMPACT against a corrupted teacher (METHODS.md §2e): lab data, three teachers, one wrong on 30% of questions.

Trains the same tiny student (same seed, same data: every path kept, consensus recorded) twice on the shared loop:
``compact`` and the uniform union ``sft-multi``. Prints each teacher's mean COMPACT weight (all logged
(question, teacher) pairs after warm-up; also split by corrupted / clean questions) and the test accuracy of
both students, side by side.

    PYTHONPATH=src python benchmarks/bench_compact_corrupt.py --train 300 --test 100 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compact_lab import corrupted_lab_run  # noqa: E402
from cotdistill.config import RunConfig  # noqa: E402
from cotdistill.records import load_questions  # noqa: E402
from cotdistill.rundir import RunDir  # noqa: E402


def accuracy(student_dir: Path, questions: list, max_new_tokens: int = 96) -> float:
    """Greedy test accuracy of a saved student (plain HF directory, loaded with no cotdistill code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cotdistill.evaluation import answer_questions

    model = AutoModelForCausalLM.from_pretrained(student_dir)
    tok = AutoTokenizer.from_pretrained(student_dir)
    return sum(a.correct for a in answer_questions(model, tok, questions, max_new_tokens)) / len(questions)


def train(data: RunDir, root: Path, method: str, args: argparse.Namespace, options: dict) -> tuple[RunDir, dict]:
    from cotdistill.stages.train import train as train_loop

    run = RunDir.at(root).ensure()
    for f in (data.questions, data.paths, data.filtered):
        shutil.copy(f, run.root / f.name)
    cfg = RunConfig.model_validate(
        {
            "seed": args.seed,
            "students": [{"name": "s", "kind": "preset", "preset": "tiny-gpt2", "size": {"vocab": 600}, "lr": args.lr}],
            "train": {
                "method": method,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "max_length": 256,
                "bf16": False,
                "trackers": [],
                "options": options,
            },
        }
    )
    t0 = time.perf_counter()
    summary = train_loop(run, cfg)
    summary["wall_s"] = time.perf_counter() - t0
    return run, summary


def weight_table(run: RunDir, bad: set[str], warmup_steps: int) -> dict[str, dict[str, float]]:
    """Mean weight, C, A, D per teacher over logged (question, teacher) pairs after warm-up."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(run.logs / "compact_weights.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["step"] < warmup_steps:
                continue
            t = r["teacher"]
            acc[t]["weight"].append(r["weight"])
            acc[t]["weight_bad_q" if r["question_id"] in bad else "weight_clean_q"].append(r["weight"])
            for k in ("C", "A", "D"):
                if r[k] is not None:
                    acc[t][k].append(r[k])
    return {t: {k: sum(v) / len(v) for k, v in d.items() if v} for t, d in sorted(acc.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=24)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--styles", default="vanilla,cot")
    ap.add_argument("--corrupt-share", type=float, default=0.3)
    ap.add_argument("--out", default="runs/bench_compact_corrupt")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--ablate-c", action="store_true", help="also train compact with use_c: false (A and D only)")
    ap.add_argument("--figure", help="where to write the weight-trajectory PNG (default OUT/compact_weights.png)")
    args = ap.parse_args()

    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    data, bad = corrupted_lab_run(
        root / "data", args.train, args.test, tuple(args.styles.split(",")), args.corrupt_share, args.seed
    )
    print(
        f"data: {args.train} train questions, corrupted teacher wrong on {len(bad)} ({time.perf_counter() - t0:.1f} s)"
    )
    test_qs = [q for q in load_questions(data.questions).values() if q.split == "test"]

    crun, csum = train(data, root / "compact", "compact", args, {"unfiltered": True})
    urun, usum = train(data, root / "union", "sft-multi", args, {})
    warm = int(0.1 * csum["total_steps"] + 0.999999)
    table = weight_table(crun, bad, warm)
    acc_c = accuracy(crun.students / "s", test_qs)
    acc_u = accuracy(urun.students / "s", test_qs)

    print(f"\nmean COMPACT weight per teacher after warm-up (steps >= {warm} of {csum['total_steps']}), K = 3:")
    print(f"{'teacher':10} {'weight':>8} {'on bad q':>9} {'on clean q':>11} {'C':>6} {'A':>7} {'D':>7}")
    for t, d in table.items():
        print(
            f"{t:10} {d['weight']:8.3f} {d.get('weight_bad_q', float('nan')):9.3f} "
            f"{d.get('weight_clean_q', float('nan')):11.3f} {d.get('C', float('nan')):6.3f} "
            f"{d.get('A', float('nan')):7.3f} {d.get('D', float('nan')):7.3f}"
        )
    w = {t: d["weight"] for t, d in table.items()}
    clean = [t for t in w if t != "corrupt"]
    ok = w["corrupt"] < 1 / 3 and all(w["corrupt"] < w[t] for t in clean)
    print(f"corrupt weight {w['corrupt']:.3f} < 1/3 and < every clean teacher: {ok}")
    if args.ablate_c:
        arun, _ = train(data, root / "compact_no_c", "compact", args, {"unfiltered": True, "use_c": False})
        print("\nablation use_c: false (A and D only), mean weight after warm-up:")
        ablation = weight_table(arun, bad, warm)
        nan = float("nan")
        for t, d in ablation.items():
            bad_w, clean_w, a = d.get("weight_bad_q", nan), d.get("weight_clean_q", nan), d.get("A", nan)
            print(f"{t:10} {d['weight']:8.3f}  on bad q {bad_w:.3f}  on clean q {clean_w:.3f}  A {a:.3f}")
    print(f"\ntest accuracy ({len(test_qs)} questions): compact {acc_c:.3f}  uniform union (sft-multi) {acc_u:.3f}")
    print(f"train wall time: compact {csum['wall_s']:.1f} s, union {usum['wall_s']:.1f} s")
    from cotdistill.training.methods.compact.plot import plot_weight_trajectory

    fig = plot_weight_trajectory(crun.logs / "compact_weights.jsonl", args.figure or root / "compact_weights.png")
    print(f"weight trajectory: {fig}")
    out = {
        "args": vars(args),
        "corrupted_questions": len(bad),
        "weights": table,
        "corrupt_below_uniform_and_clean": ok,
        "accuracy": {"compact": acc_c, "sft-multi": acc_u},
        "train_seconds": {"compact": csum["wall_s"], "sft-multi": usum["wall_s"]},
        "steps": {"compact": csum["total_steps"], "sft-multi": usum["total_steps"]},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
