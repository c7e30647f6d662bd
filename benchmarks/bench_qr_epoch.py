"""One epoch of QR-Distill's joint training vs the two students' separate ``sft-multi`` epochs on the same data.

Both sides run in this process on the same lab data (kept paths of a synthetic roster), the same students
(a tiny-gpt2 and a tiny-llama preset), batch size and precision. Printed: each side's loop time (optimizer
steps only) and wall time (including student building, tokenizer training and, for QR-Distill, the router's
embedding of every path), and the ratios joint / (separate A + separate B). The paper reports 0.70.

    PYTHONPATH=src python benchmarks/bench_qr_epoch.py --train 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from cotdistill.config import load_config  # noqa: E402
from cotdistill.rundir import RunDir  # noqa: E402
from qr_lab import make_lab_run, two_student_config  # noqa: E402


def _fresh_copy(src: RunDir, dst: Path) -> RunDir:
    dst.mkdir(parents=True)
    for f in (src.questions, src.paths, src.filtered):
        shutil.copy(f, dst / f.name)
    return RunDir.at(dst)


def _train(run: RunDir, cfg_path: Path, method: str, overrides: list[str]) -> dict:
    from cotdistill.training.loop import train

    cfg = load_config(cfg_path, overrides)
    t0 = time.perf_counter()
    summary = train(run.root, cfg, method=method, resume=False)
    summary["wall"] = time.perf_counter() - t0
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=200, help="training questions (x 3 teachers x 6 styles paths)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (default fp32)")
    ap.add_argument("--options", nargs="*", default=[], help="extra qr-distill options key=value")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_qr_"))
    data = make_lab_run(
        root / "data",
        n_train=args.train,
        n_dev=0,
        tasks=("arith", "compare"),
        teachers=("careful", "verbose", "sloppy"),
        styles=["vanilla", "cot", "tot", "program", "backward", "facts"],
    )
    size = {"n_layer": args.layers, "d_model": args.d_model}
    students = [
        {"name": "gpt2", "preset": "tiny-gpt2", "size": {**size, "vocab": 1000}, "lr": 1e-3},
        {"name": "llama", "preset": "tiny-llama", "size": {**size, "vocab": 1200}, "lr": 1e-3},
    ]
    common = [f"train.bf16={str(args.bf16).lower()}"]
    cfg = two_student_config(data, epochs=1, batch_size=args.batch, students=students)
    results = {}
    for label, method, only in (("joint qr-distill", "qr-distill", None), ("sft-multi gpt2", "sft-multi", 0),
                                ("sft-multi llama", "sft-multi", 1)):  # fmt: skip
        run = _fresh_copy(data, root / label.replace(" ", "_"))
        overrides = list(common)
        if only is not None:
            overrides.append(f"students={json.dumps([students[only]])}")
        else:
            overrides += [f"train.options.{o}" for o in args.options]
        results[label] = _train(run, cfg, method, overrides)
        print(f"{label:18s} loop {results[label]['seconds']:8.2f} s  wall {results[label]['wall']:8.2f} s  "
              f"steps {results[label]['steps']}  examples {results[label]['examples']}", flush=True)  # fmt: skip

    joint = results["joint qr-distill"]
    sep = [results["sft-multi gpt2"], results["sft-multi llama"]]
    loop_ratio = joint["seconds"] / sum(s["seconds"] for s in sep)
    wall_ratio = joint["wall"] / sum(s["wall"] for s in sep)
    print()
    print(f"paths trained on: {joint['examples']} (kept), batch {args.batch}, d_model {args.d_model}, "
          f"layers {args.layers}, {'bf16' if args.bf16 else 'fp32'}")  # fmt: skip
    sep_loop = sum(s["seconds"] for s in sep)
    print(f"loop time  joint / separate = {joint['seconds']:.2f} / {sep_loop:.2f} = {loop_ratio:.3f}")
    print(f"wall time  joint / separate = {joint['wall']:.2f} / {sum(s['wall'] for s in sep):.2f} = {wall_ratio:.3f}")
    print("(paper: 0.70; issue 10 target: <= 0.6)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
