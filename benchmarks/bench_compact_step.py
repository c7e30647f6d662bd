"""COMPACT's step time against the uniform union on the same question-major batches (issue 21 goal for the paper
variant: <= 1.3x).

Every side runs the same student (a fresh copy from the same seed), the same lab data (the corrupted-teacher
data: 30% of one teacher's paths end in a wrong answer, so L_MCon continues their caches) and the same
question-major batches through the loop's own pieces (``build_student``, ``encode``/``collate``, ``make_batches``,
the loop's ``Student``): one step = ``Method.compute`` + backward + AdamW step. The sides take turns step by step
(the order rotating), so a load spike on the shared machine hits them all; the medians and their ratios to the
union are printed. Sides: the paper variant with default options, then (``--breakdown``) with each cost switched
off (S_MI: the gold pass; L_MCon: the answer distributions and cache continuations; S_cons), and v1 (``--v1``).

    PYTHONPATH=src python benchmarks/bench_compact_step.py --train 60 --steps 30 --threads 1 --breakdown
    PYTHONPATH=src python benchmarks/bench_compact_step.py --gguf smollm2 --train 40 --batch-size 8 --steps 6 \
        --breakdown
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
    ap.add_argument("--gguf", default=None, help="a pretrained student instead of the preset (e.g. smollm2), LoRA r16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_compact_step")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--breakdown", action="store_true", help="also the paper variant with each cost switched off")
    ap.add_argument("--v1", action="store_true", help="also the v1 variant")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    styles = tuple(args.styles.split(","))
    data, _ = corrupted_lab_run(Path(args.out) / "data", args.train, 0, styles, 0.3, args.seed, consensus=args.v1)
    questions = {k: q for k, q in load_questions(data.questions).items() if q.split == "train"}
    paths = list(read_paths(data.filtered))
    cfg = RunConfig.model_validate(
        {"seed": args.seed, "train": {"method": "compact", "options": {"unfiltered": True, "warmup_ratio": 0.0}}}
    )
    if args.gguf:
        sc = StudentConfig(name="s", kind="gguf", path=args.gguf, lora={"r": 16, "alpha": 32, "dropout": 0.0})
    else:
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
        return Student("s", b.model, b.tokenizer, torch.device("cpu"), False, b.lora)

    base = dict(cfg.train.options)
    variants = [("union", SFTMulti, {}), ("compact", CompactMethod, base)]
    if args.breakdown:
        for name, off in (("no S_MI", "use_mi"), ("no L_MCon", "use_mcon"), ("no S_cons", "use_cons")):
            variants.append((f"compact {name}", CompactMethod, {**base, off: False}))
        variants.append(("compact signals only", CompactMethod, {**base, "use_mi": False, "use_mcon": False}))
    if args.v1:
        variants.append(("compact v1", CompactMethod, {**base, "variant": "v1"}))
    sides = {}
    for name, cls, opts in variants:
        s = student()
        c = cfg.model_copy(deep=True)
        c.train.options = dict(opts)
        m = cls(c, [s], RunDir.at(args.out))
        params = [p for p in s.model.parameters() if p.requires_grad]
        sides[name] = (s, m, torch.optim.AdamW(params, lr=1e-3))
    # the same examples (the union's = every kept path; compact: every path, all kept here) in the same batches
    examples = sides["compact"][1].examples(questions, paths)
    tok = sides["compact"][0].tokenizer
    enc = [encode(tok, ex.prompt, ex.target) for ex in examples]
    batches = make_batches(
        [len(e) for e in enc], [ex.question.id for ex in examples], args.batch_size, args.seed, 0, "question", False
    )
    print(f"{len(examples)} examples, {len(batches)} question-major batches of about {args.batch_size} examples")

    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    total = args.steps + 3
    for step in range(total):
        idx = batches[step % len(batches)]
        for name in names[step % len(names) :] + names[: step % len(names)]:
            s, m, opt = sides[name]
            batch = Batch(
                examples=[examples[i] for i in idx], inputs={"s": collate([enc[i] for i in idx], tok.pad_token_id)}
            )
            t0 = time.perf_counter()
            loss = m.compute(batch, StepInfo(step=step, epoch=0, total_steps=total)).losses["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            m.on_step_end(1)
            dt = time.perf_counter() - t0
            if step >= 3:
                times[name].append(dt)
    mu = statistics.median(times["union"])
    print(f"{'side':28} {'median ms':>10} {'mean ms':>9} {'ratio':>6}")
    for name in names:
        med, mean = statistics.median(times[name]), statistics.mean(times[name])
        print(f"{name:28} {med * 1000:10.1f} {mean * 1000:9.1f} {med / mu:6.3f}")
    ratio = statistics.median(times["compact"]) / mu
    print(f"ratio compact (paper, defaults) / union (median): {ratio:.3f}  (goal <= 1.3 -> "
          f"{'PASS' if ratio <= 1.3 else 'FAIL'})")  # fmt: skip


if __name__ == "__main__":
    main()
