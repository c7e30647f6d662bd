"""Consensus scoring throughput against the encoder's raw throughput on the same texts (issue 10: >= 90%).

Real data: ../shared/data/svamp-multipath/train.json (SVAMP questions x 10 real teacher paths). Side by side in
one process, the same loaded all-MiniLM-L6-v2, alternating: (raw) ``SentenceTransformer.encode`` of every path
text, nothing else; (stage) the whole ``filter`` stage with the judge off and consensus on, from a cold embedding
cache (reading paths, answer checks, embedding, per-question graphs, writing filtered.jsonl and the stats).
Ratio = raw time / stage time: the share of the encoder's throughput the stage keeps.

    PYTHONPATH=src python benchmarks/bench_consensus_speed.py [--questions 100 --repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from cotdistill.config import load_config
from cotdistill.embeddings import Encoder
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import load_questions, read_paths
from cotdistill.rundir import RunDir
from cotdistill.sources.importers import ImportOptions, run_import
from cotdistill.stages.filter import filter_run

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "svamp-multipath" / "train.json")
    ap.add_argument("--questions", type=int, default=100, help="use the first N questions (0: all 350)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64, help="texts per encoder forward (both sides)")
    ap.add_argument("--batch-paths", type=int, default=0, help="filter.batch_paths for the stage (0: the default)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        run_import("mcc-kd", args.data, src, ImportOptions())
        questions = load_questions(src / "questions.jsonl")
        keep = set(list(questions)[: args.questions or None])
        paths = [p for p in read_paths(src / "paths.jsonl") if p.question_id in keep]
        texts = [p.text for p in paths]
        sets = ["filter.judge.kind=none", "filter.consensus.enabled=true"]
        sets.append(f"filter.consensus.batch_size={args.batch_size}")
        if args.batch_paths:
            sets.append(f"filter.batch_paths={args.batch_paths}")
        cfg = load_config(None, sets)
        model = Encoder("minilm").model
        model.encode(texts[:64], batch_size=args.batch_size)  # warm-up: one-time costs on neither side

        raw_s: list[float] = []
        stage_s: list[float] = []
        for k in range(args.repeats):
            t0 = time.perf_counter()
            model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            raw_s.append(time.perf_counter() - t0)

            run = Path(tmp) / f"run{k}"
            run.mkdir()
            atomic_write_jsonl(run / "questions.jsonl", [questions[q] for q in questions if q in keep])
            atomic_write_jsonl(run / "paths.jsonl", paths)
            rd = RunDir.at(run)
            enc = Encoder("minilm", cache_dir=rd.cache / "embeddings")  # cold cache: every text is embedded
            t0 = time.perf_counter()
            filter_run(rd, cfg, encoder=enc)
            stage_s.append(time.perf_counter() - t0)
            enc.close()

    raw, stage = statistics.median(raw_s), statistics.median(stage_s)
    n = len(texts)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(
        f"{len(keep)} questions, {n} path texts, batch size {args.batch_size}, filter.batch_paths "
        f"{cfg.filter.batch_paths}, {args.repeats} repeats (median)"
    )
    print(f"raw encoder      {raw:7.2f} s  {n / raw:7.1f} texts/s   runs: {', '.join(f'{x:.2f}' for x in raw_s)}")
    print(f"filter stage     {stage:7.2f} s  {n / stage:7.1f} texts/s   runs: {', '.join(f'{x:.2f}' for x in stage_s)}")
    ratio = raw / stage
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    print(f"stage keeps {100 * ratio:.1f}% of the encoder's raw throughput -> {verdict} (goal 90%)")


if __name__ == "__main__":
    main()
