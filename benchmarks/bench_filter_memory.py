"""Peak memory of `cotdistill filter` on 200k+ paths in random question order (goals: under 1.5 GB; flat in N).

Builds a run from the real SVAMP paths (../shared/data/svamp-multipath/train.json), replicated to N paths
(10 per question, written in a random order, so grouping must not rely on file order), then runs
`cotdistill filter` in a subprocess per mode and reads that child's peak RSS with os.wait4. Printed side by side:
the floor (a child that only imports the same modules and loads the encoder) and each filter mode.

Modes: `judge`: answer check + arithmetic judge (every path's text unique);
`consensus`: answer check + arithmetic judge + graph consensus with a tiny random-weight encoder
(``make_tiny_encoder``: the real sentence-transformers code path, cheap per text).

With several sizes (``--paths 100000,1000000``) each size gets its own run, and the last lines print each
mode's peak RSS at the largest size over the smallest (issue 10: within 10%).

    PYTHONPATH=src python benchmarks/bench_filter_memory.py [--paths 200000[,N...]] [--modes judge,consensus]
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


def measure(data: Path, n_paths: int, modes: list[str], unique: bool, env: dict[str, str]) -> dict[str, float]:
    """Build an ``n_paths`` run in a temp dir and return the peak RSS (bytes) of the floor and of each mode."""
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        t0 = time.perf_counter()
        build_run(data, run, n_paths, unique=unique)
        size = (run / "paths.jsonl").stat().st_size
        secs = time.perf_counter() - t0
        print(f"built {n_paths} paths ({size / GB:.2f} GB, random order, unique texts: {unique}) in {secs:.0f}s")
        enc = make_tiny_encoder(Path(tmp) / "tiny-encoder")
        floor_code = (
            "import cotdistill.filtering, cotdistill.cli; from cotdistill.embeddings import Encoder; "
            f"Encoder({str(enc)!r})"
        )
        rss, wall, rc = peak_rss([sys.executable, "-c", floor_code], env)
        peaks["floor"] = rss
        print(f"{'floor (imports + encoder, no paths)':<40} peak RSS {rss / GB:.3f} GB", flush=True)
        for mode in modes:
            sets = ["--set", "filter.consensus.enabled=false"]
            if mode == "consensus":
                sets = ["--set", "filter.consensus.enabled=true", "--set", f"filter.consensus.encoder={enc}"]
            cmd = [sys.executable, "-m", "cotdistill.cli", "filter", str(run), *sets, "--json"]
            m_rss, wall, rc = peak_rss(cmd, env)
            peaks[mode] = m_rss
            stats = json.loads((run / "filter_stats.json").read_text()) if rc == 0 else {}
            print(
                f"{'filter, mode ' + mode:<40} peak RSS {m_rss / GB:.3f} GB | {m_rss / (1.5 * GB):.2f}x the 1.5 GB "
                f"goal | {m_rss / rss:.2f}x the floor | {wall:.0f}s wall, {n_paths / wall:.0f} paths/s | rc={rc} "
                f"| kept {stats.get('kept')}/{stats.get('total')}",
                flush=True,
            )
    return peaks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "svamp-multipath" / "train.json")
    ap.add_argument("--paths", default="200000", help="number of paths; several, comma-separated, to compare sizes")
    ap.add_argument("--modes", default="judge,consensus")
    ap.add_argument("--unique", action="store_true", help="make every path text unique (embeds every path)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    sizes = [int(x) for x in args.paths.split(",")]
    modes = args.modes.split(",")
    peaks = {n: measure(args.data, n, modes, args.unique, env) for n in sizes}
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        for mode in ["floor", *modes]:
            print(
                f"{mode:<10} peak RSS at {hi:,} / at {lo:,} paths: "
                f"{peaks[hi][mode] / GB:.3f} / {peaks[lo][mode] / GB:.3f} GB = {peaks[hi][mode] / peaks[lo][mode]:.3f}x"
            )


if __name__ == "__main__":
    main()
