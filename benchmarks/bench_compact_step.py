"""COMPACT's step time against the uniform union on the same question-major batches (issue 8 goal: <= 1.3x,
issue 10: <= 1.1x).

Both sides run the same student (a fresh copy from the same seed), the same lab data and the same question-major
batches through the loop's own pieces (``build_student``, ``encode``/``collate``, ``make_batches``, the loop's
``Student``): one step = ``Method.compute`` + backward + AdamW step. The two sides alternate step by step, so a
load spike on the shared machine hits both; the medians and their ratio are printed.

    PYTHONPATH=src python benchmarks/bench_compact_step.py --train 120 --steps 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compact_lab import corrupted_lab_run  # noqa: E402
from cotdistill.config import RunConfig  # noqa: E402
from cotdistill.records import load_questions, read_paths  # noqa: E402
from cotdistill.rundir import RunDir  # noqa: E402


def main() -> None:
    from cotdistill.config import StudentConfig
    from cotdistill.students import build_student
    from cotdistill.students.encoding import collate, encode
    from cotdistill.training.data import make_batches
    from cotdistill.training.methods.base import Batch, StepInfo
    from cotdistill.training.methods.compact.method import CompactMethod
    from cotdistill.training.methods.sft import SFTMulti
    from cotdistill.training.student import Student

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=120)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per side (after 3 warm-up steps each)")
    ap.add_argument("--batch-size", type=int, default=24, help="examples per batch (whole questions)")
    ap.add_argument("--styles", default="vanilla,cot")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_compact_step")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data, _ = corrupted_lab_run(Path(args.out) / "data", args.train, 0, tuple(args.styles.split(",")), 0.3, args.seed)
    questions = {k: q for k, q in load_questions(data.questions).items() if q.split == "train"}
    paths = list(read_paths(data.filtered))
    cfg = RunConfig.model_validate(
        {"seed": args.seed, "train": {"method": "compact", "options": {"unfiltered": True, "warmup_ratio": 0.0}}}
    )
    sc = StudentConfig(
        name="s",
        kind="preset",
        preset="tiny-gpt2",
        size={"vocab": 600, "d_model": args.d_model, "n_layer": args.n_layer},
    )
    texts = [q.question for q in questions.values()] + [p.text for p in paths]

    def student() -> Student:
        torch.manual_seed(args.seed)
        b = build_student(sc, texts, Path(args.out) / "tok")
        b.model.train()
        return Student("s", b.model, b.tokenizer, torch.device("cpu"), False, False)

    sides = {}
    for name, cls, opts in (("union", SFTMulti, {}), ("compact", CompactMethod, cfg.train.options)):
        s = student()
        c = cfg.model_copy(deep=True)
        c.train.options = dict(opts)
        m = cls(c, [s], RunDir.at(args.out))
        sides[name] = (s, m, torch.optim.AdamW(s.model.parameters(), lr=1e-3))
    # the same examples (the union's = every kept path; compact: every path, all kept here) in the same batches
    examples = sides["compact"][1].examples(questions, paths)
    tok = sides["compact"][0].tokenizer
    enc = [encode(tok, ex.prompt, ex.target) for ex in examples]
    batches = make_batches(
        [len(e) for e in enc], [ex.question.id for ex in examples], args.batch_size, args.seed, 0, "question", False
    )
    print(f"{len(examples)} examples, {len(batches)} question-major batches of about {args.batch_size} examples")

    times: dict[str, list[float]] = {"union": [], "compact": []}
    total = args.steps + 3
    for step in range(total):
        idx = batches[step % len(batches)]
        for name in ("union", "compact") if step % 2 == 0 else ("compact", "union"):
            s, m, opt = sides[name]
            batch = Batch(
                examples=[examples[i] for i in idx], inputs={"s": collate([enc[i] for i in idx], tok.pad_token_id)}
            )
            t0 = time.perf_counter()
            loss = m.compute(batch, StepInfo(step=step, epoch=0, total_steps=total)).losses["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            dt = time.perf_counter() - t0
            if step >= 3:
                times[name].append(dt)
    mu, mc = statistics.median(times["union"]), statistics.median(times["compact"])
    print(f"median step: union (sft-multi, question-major) {mu * 1000:.1f} ms, compact {mc * 1000:.1f} ms")
    print(f"mean step:   union {statistics.mean(times['union']) * 1000:.1f} ms, compact "
          f"{statistics.mean(times['compact']) * 1000:.1f} ms")  # fmt: skip
    ratio = mc / mu
    print(f"ratio compact / union (median): {ratio:.3f}  (issue 8 goal <= 1.3, issue 10 goal <= 1.1 -> "
          f"{'PASS' if ratio <= 1.1 else 'FAIL'})")  # fmt: skip


if __name__ == "__main__":
    main()
