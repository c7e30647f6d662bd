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

import torch  # noqa: E402

from cotdistill.config import load_config  # noqa: E402
from cotdistill.rundir import RunDir  # noqa: E402
from qr_lab import make_lab_run, two_student_config  # noqa: E402


def _fresh_copy(src: RunDir, dst: Path) -> RunDir:
    dst.mkdir(parents=True)
    for f in (src.questions, src.paths, src.filtered):
        shutil.copy(f, dst / f.name)
    if src.cache.exists():  # the router's path embeddings: computed once per run, timed on their own
        shutil.copytree(src.cache, dst / "cache")
    return RunDir.at(dst)


def _train(run: RunDir, cfg_path: Path, method: str, overrides: list[str]) -> dict:
    from cotdistill.stages.train import train

    cfg = load_config(cfg_path, [*overrides, f"train.method={method}"])
    t0, c0 = time.perf_counter(), time.process_time()
    summary = train(run, cfg, resume=False)
    summary["wall"] = time.perf_counter() - t0
    summary["cpu"] = time.process_time() - c0
    return summary


def _embed_once(data: RunDir) -> int:
    """Fill ``data``'s router-embedding cache (what the first qr-distill run of a run directory does)."""
    from cotdistill.embeddings import Encoder
    from cotdistill.records import ReasoningPath as PathRec
    from cotdistill.records import read_jsonl, read_questions

    questions = {q.id: q for q in read_questions(data.questions)}
    paths = [p for p in read_jsonl(data.filtered, PathRec) if p.checks.get("kept") and p.question_id in questions]
    enc = Encoder(cache_dir=data.cache / "embeddings")
    enc.encode(sorted({questions[p.question_id].question for p in paths}))
    enc.encode([p.text for p in paths])
    return len(paths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=200, help="training questions (x 3 teachers x 6 styles paths)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (default fp32)")
    ap.add_argument("--options", nargs="*", default=[], help="extra qr-distill options key=value")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best time of each side counts")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared machine)")
    ap.add_argument("--cached", action="store_true", help="also time closed_loss=cached (no no-grad forward)")
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
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    n_embedded = _embed_once(data)
    print(f"router embeddings of every path (once per run, cached): {time.perf_counter() - t0:.2f} s "
          f"({n_embedded} paths)", flush=True)  # fmt: skip
    sides = [("joint qr-distill", "qr-distill", None, []), ("sft-multi gpt2", "sft-multi", 0, []),
             ("sft-multi llama", "sft-multi", 1, [])]  # fmt: skip
    if args.cached:
        sides.insert(1, ("joint qr (cached)", "qr-distill", None, ["closed_loss=cached"]))
    results: dict[str, list[dict]] = {}
    for rep in range(args.repeats):  # interleaved, so a load change on a shared machine hits every side alike
        for label, method, only, opts in sides:
            run = _fresh_copy(data, root / f"{label.replace(' ', '_')}_{rep}")
            overrides = list(common)
            if only is not None:
                overrides.append(f"students={json.dumps([students[only]])}")
            else:
                overrides += [f"train.options.{o}" for o in [*args.options, *opts]]
            r = _train(run, cfg, method, overrides)
            results.setdefault(label, []).append(r)
            print(f"[{rep}] {label:18s} loop {r['seconds']:8.2f} s  wall {r['wall']:8.2f} s  cpu {r['cpu']:8.2f} s  "
                  f"steps {r['steps']}  "
                  f"examples {r['examples']}", flush=True)  # fmt: skip

    def best(label: str, key: str) -> float:
        return min(r[key] for r in results[label])

    sep_loop = best("sft-multi gpt2", "seconds") + best("sft-multi llama", "seconds")
    sep_wall = best("sft-multi gpt2", "wall") + best("sft-multi llama", "wall")
    sep_cpu = best("sft-multi gpt2", "cpu") + best("sft-multi llama", "cpu")
    print()
    print(f"paths trained on: {results['sft-multi gpt2'][0]['examples']} (kept), batch {args.batch}, "
          f"d_model {args.d_model}, layers {args.layers}, {'bf16' if args.bf16 else 'fp32'}, "
          f"best of {args.repeats} interleaved repeats")  # fmt: skip
    for label, *_ in sides:
        if label.startswith("joint"):
            jl, jw, jc = best(label, "seconds"), best(label, "wall"), best(label, "cpu")
            print(f"{label}: loop joint / separate = {jl:.2f} / {sep_loop:.2f} = {jl / sep_loop:.3f};  "
                  f"wall = {jw:.2f} / {sep_wall:.2f} = {jw / sep_wall:.3f};  "
                  f"cpu = {jc:.2f} / {sep_cpu:.2f} = {jc / sep_cpu:.3f}")  # fmt: skip
    print("(paper: 0.70; issue 10 target: <= 0.6)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
