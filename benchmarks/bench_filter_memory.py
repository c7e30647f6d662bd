"""Peak memory of `cotdistill filter` on 200k+ paths in random question order (goals: under 1.5 GB; flat in N).

Builds a run from the real SVAMP paths (../shared/data/svamp-multipath/train.json), replicated to N paths
(10 per question, written in a random order, so grouping must not rely on file order), then runs
`cotdistill filter` in a subprocess per mode; each child reports its own peak RSS (VmHWM) at exit. Printed side
by side: the floor (a child that only imports the same modules and loads the encoder) and each filter mode.

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


# The child reports its own peak from /proc/self/status (VmHWM) at exit. os.wait4's ru_maxrss is not usable
# here: Linux carries the high-water mark of the memory the child had before exec into it, and a child that
# Python's subprocess starts with vfork shares this (torch-importing, path-building) process's memory until
# exec, so ru_maxrss reported this process's size, not the filter's (0.38 GB where the filter itself held 0.06).
_REPORT_HWM = (
    "import atexit, sys\n"
    "def _hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\nVMHWM_KB ' + line.split()[1] + '\\n')\n"
    "atexit.register(_hwm)\n"
)


def peak_rss(code: str, args: list[str], env: dict[str, str]) -> tuple[int, int, float, int]:
    """(own peak RSS bytes, wait4 ru_maxrss bytes, wall seconds, return code) of ``python -c code args``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child can never block on it
        proc = subprocess.Popen(
            [sys.executable, "-c", _REPORT_HWM + code, *args], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if rc != 0:
        print(text[-2000:], file=sys.stderr)
    own = [int(line.split()[1]) for line in text.splitlines() if line.startswith("VMHWM_KB ")]
    if not own:
        raise RuntimeError(f"the child did not report its peak memory (rc={rc}): {text[-500:]}")
    return own[-1] * 1024, usage.ru_maxrss * 1024, wall, rc  # Linux: both in kilobytes


_RUN_CLI = (
    "import runpy; sys.argv = ['cotdistill', *sys.argv[1:]]; runpy.run_module('cotdistill.cli', run_name='__main__')"
)


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
        rss, _, wall, rc = peak_rss(floor_code, [], env)
        peaks["floor"] = rss
        print(f"{'floor (imports + encoder, no paths)':<40} peak RSS {rss / GB:.3f} GB", flush=True)
        for mode in modes:
            sets = ["--set", "filter.consensus.enabled=false"]
            if mode == "consensus":
                sets = ["--set", "filter.consensus.enabled=true", "--set", f"filter.consensus.encoder={enc}"]
            m_rss, inherited, wall, rc = peak_rss(_RUN_CLI, ["filter", str(run), *sets, "--json"], env)
            peaks[mode] = m_rss
            stats = json.loads((run / "filter_stats.json").read_text()) if rc == 0 else {}
            print(
                f"{'filter, mode ' + mode:<40} peak RSS {m_rss / GB:.3f} GB | {m_rss / (1.5 * GB):.2f}x the 1.5 GB "
                f"goal | {m_rss / rss:.2f}x the floor | {wall:.0f}s wall, {n_paths / wall:.0f} paths/s | rc={rc} "
                f"| kept {stats.get('kept')}/{stats.get('total')} | (wait4 ru_maxrss, inherits this process's: "
                f"{inherited / GB:.3f} GB)",
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
