"""Peak memory of `cotdistill filter` on 200k paths in random question order (goal: under 1.5 GB).

Builds a run from the real SVAMP paths (../shared/data/svamp-multipath/train.json), replicated to N paths
(10 per question, written in a random order, so grouping must not rely on file order), then runs
`cotdistill filter` in a subprocess per mode and reads that child's peak RSS with os.wait4. Printed side by side:
the floor (a child that only imports the same modules and loads the encoder) and each filter mode.

Modes: `judge`: answer check + arithmetic judge (every path's text unique);
`consensus`: answer check + arithmetic judge + graph consensus with a tiny random-weight encoder
(``make_tiny_encoder``: the real sentence-transformers code path, cheap per text).

    PYTHONPATH=src python benchmarks/bench_filter_memory.py [--paths 200000] [--modes judge,consensus]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cotdistill.embeddings import make_tiny_encoder
from cotdistill.sources.importers import ImportOptions, run_import

REPO = Path(__file__).resolve().parents[1]
GB = 1024**3


def _letters(i: int) -> str:
    s = ""
    while True:
        i, r = divmod(i, 26)
        s += chr(97 + r)
        if i == 0:
            return s


def build_run(src: Path, out: Path, n_paths: int, seed: int = 0, unique: bool = False) -> None:
    """questions.jsonl + paths.jsonl with ``n_paths`` paths (10 per question) in random order.

    ``unique`` appends a letters-only tag to every text (no number, so answers are unchanged), so no two paths
    share a text and the embedding cache cannot deduplicate them.
    """
    base = out / "base"
    run_import("mcc-kd", src, base, ImportOptions())
    questions = [json.loads(x) for x in (base / "questions.jsonl").read_text().splitlines()]
    by_q: dict[str, list[dict]] = {}
    for line in (base / "paths.jsonl").read_text().splitlines():
        p = json.loads(line)
        by_q.setdefault(p["question_id"], []).append(p)
    n_q = n_paths // 10
    with open(out / "questions.jsonl", "w") as f:
        for i in range(n_q):
            q = dict(questions[i % len(questions)])
            q["id"] = f"q{i}"
            f.write(json.dumps(q) + "\n")
    order = list(range(n_q * 10))
    random.Random(seed).shuffle(order)
    with open(out / "paths.jsonl", "w") as f:
        for k in order:
            qi, j = divmod(k, 10)
            tpl = by_q[questions[qi % len(questions)]["id"]][j]
            p = dict(tpl)
            p["id"], p["question_id"] = f"q{qi}|teacher|cot|{j}", f"q{qi}"
            if unique:
                p["text"] = tpl["text"] + f"\n(copy {_letters(qi)})"
            f.write(json.dumps(p) + "\n")


def peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    """(peak RSS bytes, wall seconds, return code) of one child process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child can never block on it
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            err.seek(0)
            print(err.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return usage.ru_maxrss * 1024, wall, rc  # Linux: ru_maxrss is in kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "svamp-multipath" / "train.json")
    ap.add_argument("--paths", type=int, default=200_000)
    ap.add_argument("--modes", default="judge,consensus")
    ap.add_argument("--unique", action="store_true", help="make every path text unique (embeds every path)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        t0 = time.perf_counter()
        build_run(args.data, run, args.paths, unique=args.unique)
        size = (run / "paths.jsonl").stat().st_size
        secs = time.perf_counter() - t0
        print(
            f"built {args.paths} paths ({size / GB:.2f} GB, random order, unique texts: {args.unique}) in {secs:.0f}s"
        )
        enc = make_tiny_encoder(Path(tmp) / "tiny-encoder")
        floor_code = (
            "import cotdistill.filtering, cotdistill.cli; from cotdistill.embeddings import Encoder; "
            f"Encoder({str(enc)!r})"
        )
        rss, wall, rc = peak_rss([sys.executable, "-c", floor_code], env)
        print(f"{'floor (imports + encoder, no paths)':<40} peak RSS {rss / GB:.3f} GB")
        for mode in args.modes.split(","):
            sets = ["--set", "filter.consensus.enabled=false"]
            if mode == "consensus":
                sets = ["--set", "filter.consensus.enabled=true", "--set", f"filter.consensus.encoder={enc}"]
            cmd = [sys.executable, "-m", "cotdistill.cli", "filter", str(run), *sets, "--json"]
            m_rss, wall, rc = peak_rss(cmd, env)
            stats = json.loads((run / "filter_stats.json").read_text()) if rc == 0 else {}
            print(
                f"{'filter, mode ' + mode:<40} peak RSS {m_rss / GB:.3f} GB | {m_rss / (1.5 * GB):.2f}x the 1.5 GB "
                f"goal | {m_rss / rss:.2f}x the floor | {wall:.0f}s wall, {args.paths / wall:.0f} paths/s | rc={rc} "
                f"| kept {stats.get('kept')}/{stats.get('total')}"
            )


if __name__ == "__main__":
    main()
