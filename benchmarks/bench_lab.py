"""How fast the lab makes data: 3 synthetic teachers x 6 styles x N questions (default 1000 -> 18,000 paths).

Both sides in one run: the full lab (questions + synthetic paths with strict answer extraction, written as
JSONL) against the I/O floor (writing the very same path records again, with no generation). Prints the
times, paths per second, and the ratio; the goal is seconds, not minutes.

    PYTHONPATH=src python benchmarks/bench_lab.py [--questions 1000]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.lab import write_lab_paths
from cotdistill.records import read_paths
from cotdistill.rundir import RunDir
from cotdistill.stages.questions import write_questions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--questions", type=int, default=1000, help="training questions (spread over the 3 tasks)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        run = Path(d)
        cfg = RunConfig.model_validate({"seed": args.seed, "questions": {"train": args.questions, "dev": 0, "test": 0}})
        t0 = time.perf_counter()
        write_questions(RunDir.at(run), cfg)
        t1 = time.perf_counter()
        counts = write_lab_paths(run, seed=args.seed)
        t2 = time.perf_counter()
        paths = list(read_paths(run / "paths.jsonl"))
        t3 = time.perf_counter()
        atomic_write_jsonl(run / "copy.jsonl", paths)
        t4 = time.perf_counter()
    n = sum(counts.values())
    lab = t2 - t0
    floor = t4 - t3
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"questions: {args.questions} in {t1 - t0:.2f} s")
    print(f"paths: {n} (3 teachers x 6 styles) in {t2 - t1:.2f} s = {n / (t2 - t1):,.0f} paths/s")
    print(f"lab total (questions + paths): {lab:.2f} s")
    print(f"I/O floor (re-writing the same {n} records): {floor:.2f} s")
    print(f"ratio lab / I/O floor: {lab / floor:.1f}x")
    print(f"ratio lab / 60 s: {lab / 60:.3f}")


if __name__ == "__main__":
    main()
