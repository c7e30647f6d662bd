"""COMPACT against a corrupted teacher (METHODS.md §2g): lab data, three teachers, one wrong on 30% of questions.

Trains the same tiny student (same seed, same data: every path kept, no filter) with ``compact`` on the shared loop
(the paper variant by default, options from ``--set``), optionally the switch-offs (``--ablations``), the v1
variant (``--v1``) and the uniform union ``sft-multi`` (``--union``). Prints, per run, each teacher's mean weight
after warm-up on the corrupted and on the clean questions (the issue-21 acceptance: corrupted teacher below 1/K and
below every clean teacher on the corrupted questions; every teacher within 0.05 of 1/K on the clean ones), its
mean signals, the share of questions where it has the top weight, and (``--eval``) test accuracy.

    PYTHONPATH=src python benchmarks/bench_compact_corrupt.py --train 120 --epochs 3 \
        --also gold-free:use_mi=false --also gold-free-random:use_mi=false,cons_projection=random
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

ABLATIONS = {"w/o S_MI": {"use_mi": False}, "w/o S_cons": {"use_cons": False}, "w/o S_PPL": {"use_ppl": False},
             "w/o L_MCon": {"use_mcon": False}}  # fmt: skip


def register_question_batched_union() -> str:
    """``sft-multi`` with COMPACT's question-major batches (all of a question's paths in one micro-batch): the union
    on the same batch composition as COMPACT, to tell the weights' effect from the batching's."""
    from cotdistill.training.methods.options import SFTMultiOptions
    from cotdistill.training.methods.registry import register_method
    from cotdistill.training.methods.sft import SFTMulti

    class QuestionBatchedUnion(SFTMulti):
        batching = "question"

    register_method("sft-multi-qb", SFTMultiOptions, QuestionBatchedUnion, "sft-multi on question-major batches")
    return "sft-multi-qb"


def accuracy(student_dir: Path, questions: list, prompt: str, max_new_tokens: int = 96) -> float:
    """Greedy test accuracy of a saved student (plain HF directory, loaded with no cotdistill code) under the prompt
    policy it was trained with."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cotdistill.evaluation import answer_questions

    model = AutoModelForCausalLM.from_pretrained(student_dir)
    tok = AutoTokenizer.from_pretrained(student_dir)
    answers = answer_questions(model, tok, questions, max_new_tokens, policy=prompt)
    return sum(a.correct for a in answers) / len(questions)


def train(data: RunDir, root: Path, method: str, args: argparse.Namespace, options: dict) -> tuple[RunDir, dict]:
    """One training run on a copy of the data files (the loop's own ``train`` stage)."""
    from cotdistill.stages.train import train as train_loop

    run = RunDir.at(root).ensure()
    for f in (data.questions, data.paths, data.filtered):
        shutil.copy(f, run.root / f.name)
    size = {"vocab": 600, "d_model": args.d_model, "n_layer": args.n_layer}
    cfg = RunConfig.model_validate(
        {
            "seed": args.seed,
            "prompt": args.prompt,
            "students": [{"name": "s", "kind": "preset", "preset": args.preset, "size": size, "lr": args.lr}],
            "train": {"method": method, "epochs": args.epochs, "batch_size": args.batch_size, "max_length": 256,
                      "bf16": False, "trackers": [], "options": options,
                      "dev_metric": "loss"},
        }
    )  # fmt: skip
    t0 = time.perf_counter()
    summary = train_loop(run, cfg)
    summary["wall_s"] = time.perf_counter() - t0
    return run, summary


def figures(run: RunDir, bad: set[str], warm: int) -> dict:
    """Mean weight per teacher on corrupted / clean questions after warm-up, mean signals, top-weight shares, and
    the acceptance verdict."""
    from cotdistill.training.methods.compact.plot import mean_weights, top_weight_share

    log = run.logs / "compact_weights.jsonl"
    qids = {json.loads(line)["question_id"] for line in log.read_text().splitlines() if line.strip()}
    groups = {q: ("corrupted" if q in bad else "clean") for q in qids}
    w = mean_weights(log, groups, warm)
    sig: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r["step"] >= warm:
            for k in ("S_MI", "S_cons", "S_PPL", "L_MCon", "C", "A", "D"):
                if r.get(k) is not None:
                    sig[r["teacher"]][f"{k} ({groups[r['question_id']]})"].append(r[k])
    k = len(w["all"])
    bad_w, clean_w = w.get("corrupted", {}), w.get("clean", {})
    clean_teachers = [t for t in bad_w if t != "corrupt"]
    ok_bad = bool(bad_w) and bad_w["corrupt"] < 1 / k and all(bad_w["corrupt"] < bad_w[t] for t in clean_teachers)
    dev = max(abs(x - 1 / k) for x in clean_w.values()) if clean_w else float("nan")
    return {
        "weights": w,
        "signals": {t: {n: sum(v) / len(v) for n, v in sorted(d.items())} for t, d in sorted(sig.items())},
        "top_share": top_weight_share(log, warm),
        "corrupt_below_uniform_and_clean": ok_bad,
        "clean_max_deviation": dev,
        "clean_within_0.05": dev <= 0.05,
    }


def show(name: str, fig: dict, summary: dict) -> None:
    print(f"\n== {name}: {summary['total_steps']} steps, {summary['wall_s']:.0f} s")
    print(f"{'teacher':8} {'w corrupted q':>13} {'w clean q':>10} {'top share':>9}  signals (after warm-up)")
    for t in fig["weights"]["all"]:
        s = "  ".join(f"{n} {v:.3f}" for n, v in fig["signals"].get(t, {}).items())
        wb, wc = fig["weights"].get("corrupted", {}).get(t, float("nan")), fig["weights"].get("clean", {}).get(t)
        print(f"{t:8} {wb:13.3f} {wc if wc is not None else float('nan'):10.3f} {fig['top_share'].get(t, 0):9.3f}  {s}")
    print(f"corrupted teacher below 1/K and every clean teacher on the corrupted questions: "
          f"{fig['corrupt_below_uniform_and_clean']}; clean questions max |w - 1/K| = {fig['clean_max_deviation']:.3f} "
          f"(<= 0.05: {fig['clean_within_0.05']})")  # fmt: skip


def parse_set(items: list[str]) -> dict:
    """``key=value`` pairs, each value read as JSON when it is (numbers, true/false), else as a string."""
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("--train", 120), ("--dev", 0), ("--test", 60), ("--epochs", 3), ("--batch-size", 24),
                          ("--seed", 0), ("--d-model", 128), ("--n-layer", 2)):  # fmt: skip
        ap.add_argument(flag, type=int, default=default)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--preset", default="tiny-gpt2")
    ap.add_argument("--prompt", default="core")
    ap.add_argument("--styles", default="vanilla,cot")
    ap.add_argument("--corrupt-share", type=float, default=0.3)
    ap.add_argument("--task-options", type=json.loads, help="the lab task's options as JSON, e.g. '{\"steps\": [1]}'")
    ap.add_argument("--set", action="append", default=[], help="a compact option, e.g. use_mi=false (repeatable)")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME:K=V,K=V",
        help="another compact configuration on the same data (options on top of --set; repeatable)",
    )
    ap.add_argument("--ablations", action="store_true", help="also each switch-off of the paper variant")
    ap.add_argument("--v1", action="store_true", help="also the v1 variant (needs the filter's consensus)")
    ap.add_argument("--union", action="store_true", help="also the uniform union sft-multi (for --eval)")
    ap.add_argument("--union-question-batches", action="store_true",
                    help="also sft-multi on COMPACT's question-major batches")  # fmt: skip
    ap.add_argument("--only-extra", action="store_true", help="skip the default compact run (only --also/--union...)")
    ap.add_argument("--eval", action="store_true", help="greedy accuracy of every trained student (--eval-split)")
    ap.add_argument("--eval-split", choices=("dev", "test"), default="test",
                    help="where --eval scores: dev (--dev: to choose settings) or test (report once)")  # fmt: skip
    ap.add_argument("--out", default="runs/bench_compact_corrupt")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    styles = tuple(args.styles.split(","))
    n_test = args.test if args.eval and args.eval_split == "test" else 0
    data, bad = corrupted_lab_run(
        root / "data",
        args.train,
        n_test,
        styles,
        args.corrupt_share,
        args.seed,
        consensus=args.v1,
        task_options=args.task_options,
        dev=args.dev,
    )
    print(
        f"data: {args.train} train questions, corrupted teacher wrong on {len(bad)} ({time.perf_counter() - t0:.0f} s)"
    )
    base = {"unfiltered": True, **parse_set(args.set)}
    runs = {} if args.only_extra else {"compact": ("compact", base)}
    for spec in args.also:
        name, _, kvs = spec.partition(":")
        runs[f"compact {name}"] = ("compact", {**base, **parse_set([kv for kv in kvs.split(",") if kv])})
    if args.ablations:
        runs.update({f"compact {n}": ("compact", {**base, **o}) for n, o in ABLATIONS.items()})
    if args.v1:
        runs["compact v1"] = ("compact", {"unfiltered": True, "variant": "v1"})
    if args.union:
        runs["sft-multi"] = ("sft-multi", {})
    if args.union_question_batches:
        runs["sft-multi question-batched"] = (register_question_batched_union(), {})
    test_qs = [q for q in load_questions(data.questions).values() if q.split == args.eval_split]
    out: dict = {"args": vars(args), "corrupted_questions": len(bad), "runs": {}}
    for name, (method, opts) in runs.items():
        run, summary = train(data, root / name.replace(" ", "_").replace("/", ""), method, args, opts)
        res: dict = {"options": opts, "steps": summary["total_steps"], "train_seconds": summary["wall_s"]}
        if method == "compact":
            warm = int(opts.get("warmup_ratio", 0.1) * summary["total_steps"] + 0.999999)
            res.update(figures(run, bad, warm))
            show(name, res, summary)
        if args.eval:
            res["accuracy"] = accuracy(run.students / "s", test_qs, args.prompt)
            print(f"{name}: {args.eval_split} accuracy {res['accuracy']:.3f} ({len(test_qs)} questions)")
        out["runs"][name] = res
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
