"""``cotdistill bench``: methods x seeds on one dataset, giving the paper's two tables.

The data stages (questions, generation, filtering) run once in ``RUN/``; every (variant, seed) then trains and
evaluates in its own run directory ``RUN/bench/<variant>/<students>/seed<k>/`` that shares the data files by hard
link (or copy). Single-student methods train each configured student on its own; QR-Distill trains them jointly.
``RUN/bench.json`` (:class:`~cotdistill.results.BenchResult`) collects the accuracies in two groups, ``methods``
and ``ablations``, and is rewritten after every cell (marked partial until the last); the report renders one table
per group.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotdistill.config import BenchConfig, RunConfig, StudentConfig, dump_config
from cotdistill.errors import CotdistillError
from cotdistill.io import atomic_write_text
from cotdistill.progress import clock
from cotdistill.results import BenchResult, BenchRow
from cotdistill.rundir import RunDir


@dataclass(frozen=True)
class Variant:
    """A bench row: a method plus option overrides (ablations), in one of the two groups."""

    name: str
    method: str
    group: str = "methods"
    options: dict[str, Any] = field(default_factory=dict)
    joint: bool = False  # all students in one run (QR-Distill) rather than one run per student


VARIANTS: tuple[Variant, ...] = (
    Variant("sft-single", "sft-single"),
    Variant("sft-multi", "sft-multi"),
    Variant("sft-multi + answer examples", "sft-multi", options={"answer_examples": True}),
    Variant("step-by-step", "step-by-step"),
    Variant("compact", "compact"),
    Variant("qr-distill", "qr-distill", joint=True),
    Variant("qr-distill w/o QF", "qr-distill", "ablations", {"filter": False}, joint=True),
    Variant("qr-distill w/o routing", "qr-distill", "ablations", {"routing": False}, joint=True),
    Variant("qr-distill random routing", "qr-distill", "ablations", {"routing": "random"}, joint=True),
    Variant("qr-distill w/o peer", "qr-distill", "ablations", {"peer": False}, joint=True),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
_DATA_FILES = ("questions", "paths", "filtered", "filter_stats")


def _share(src: RunDir, dst: RunDir) -> None:
    """Hard-link (or copy) the data files of ``src`` into the bench cell ``dst``."""
    for name in _DATA_FILES:
        s, d = getattr(src, name), getattr(dst, name)
        if s.exists() and not d.exists():
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)


def _single(cfg: RunConfig) -> list[StudentConfig]:
    """The students single-student methods train (``bench.single_students``, default all)."""
    names = cfg.bench.single_students
    return [s for s in cfg.students if names is None or s.name in names]


def _slug(name: str) -> str:
    return name.replace("/", "").replace(" ", "-")


def cell_config(cfg: RunConfig, v: Variant, students: list[StudentConfig], seed: int) -> RunConfig:
    """The config of one bench cell: the run's, with the variant's method, options, students and seed.

    ``train.options`` of the config apply to variants of the configured method only (another method's options
    would not validate); the variant's own overrides come on top.
    """
    base = dict(cfg.train.options) if v.method == cfg.train.method else {}
    train = cfg.train.model_copy(update={"method": v.method, "options": {**base, **v.options}})
    ev = cfg.eval.model_copy(update={"base": False})  # the bench's base rows come from the run itself, once
    update = {"seed": seed, "students": students, "train": train, "eval": ev, "bench": BenchConfig()}
    data = cfg.model_copy(update=update).model_dump(mode="json")
    return RunConfig.model_validate(data)  # validated: the variant's options meet its method's options model


@dataclass(frozen=True)
class Cell:
    """One bench cell: a variant trained on some students with one seed, and the config it runs with."""

    variant: Variant
    students: tuple[StudentConfig, ...]
    seed: int
    config: RunConfig

    @property
    def who(self) -> str:
        return "-".join(s.name for s in self.students)

    def rundir(self, run: RunDir) -> RunDir:
        """Where the cell trains: ``RUN/bench/<variant slug>/<students>/seed<k>/``."""
        return run.bench_cell(_slug(self.variant.name), self.who, self.seed)


def bench_cells(cfg: RunConfig, seeds: list[int], variants: list[str] | None = None) -> list[Cell]:
    """Every cell of a bench, in run order, each config validated before any work starts."""
    unknown = sorted(set(variants or []) - set(VARIANT_NAMES))
    if unknown:
        raise CotdistillError(f"unknown bench variant(s): {', '.join(unknown)} (known: {', '.join(VARIANT_NAMES)})")
    chosen = [v for v in VARIANTS if variants is None or v.name in variants]
    return [
        Cell(v, tuple(students), seed, cell_config(cfg, v, students, seed))
        for v in chosen
        for students in ([cfg.students] if v.joint else [[s] for s in _single(cfg)])
        for seed in seeds
    ]


def cell_key(run: RunDir, cfg: RunConfig) -> str:
    """A bench cell's identity: its config and the run's filtered data; a stamp with another key is trained again."""
    from cotdistill.stages.pipeline import read_stamp

    data = read_stamp(run, "filter") or {}
    return hashlib.sha256((dump_config(cfg) + str(data.get("fingerprint"))).encode()).hexdigest()[:16]


def _train_eval(run: RunDir, sub: RunDir, cfg: RunConfig, log: Callable[[str], None]) -> None:
    """Train and evaluate one bench cell unless its stamp says it already finished with this config and data."""
    from cotdistill.stages.pipeline import stage

    key = cell_key(run, cfg)
    stamp = sub.stamp("bench")
    if stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")).get("key") == key:
        log("bench: cell up to date, skipped")
        return
    t0 = time.perf_counter()
    stage("train").run(sub, cfg)
    stage("eval").run(sub, cfg)
    secs = round(time.perf_counter() - t0, 1)
    atomic_write_text(stamp, json.dumps({"key": key, "seconds": secs}))  # this sitting's train + eval
    log(f"bench: cell done in {clock(secs)}")


def _add(rows: dict[tuple[str, str], BenchRow], method: str, student: str, group: str, m: dict[str, Any]) -> None:
    """One seed's figures of one (method, student): accuracy, no-answer and truncation rates, probe accuracies."""
    row = rows.setdefault((method, student), BenchRow(method=method, student=student, group=group))
    row.accuracies.append(m["accuracy"])
    for k in ("no_answer_rate", "truncation_rate"):
        if k in m:
            row.extras.setdefault(k, []).append(m[k])
    for probe, acc in m.get("probes", {}).items():
        row.extras.setdefault(f"probe/{probe}", []).append(acc)


def _base_rows(run: RunDir, cfg: RunConfig, seeds: list[int], rows: dict[tuple[str, str], BenchRow]) -> None:
    """The ``base`` row of every student, per seed (a preset's init depends on the seed; a pretrained student is
    evaluated once, its cache key has no seed), in the run's own ``eval/base/`` cache."""
    from cotdistill.evaluation.metrics import summarize
    from cotdistill.stages.eval import base_evals, eval_bf16, eval_sets, pick_device

    sets = eval_sets(run, cfg)
    device = pick_device(cfg.eval.device)
    for seed in seeds:
        evs = base_evals(run, cfg.model_copy(update={"seed": seed}), sets, device, eval_bf16(cfg.eval.bf16, device))
        for name, ev in evs.items():
            m = summarize(ev.outputs)
            m["probes"] = {p: summarize(recs)["accuracy"] for p, recs in ev.probes.items()}
            _add(rows, "base", name, "methods", m)


def run_bench(
    run: RunDir, cfg: RunConfig, seeds: list[int], variants: list[str] | None = None, log: Callable[[str], None] = print
) -> BenchResult:
    """Data once, then train + eval for every variant x seed; writes and returns ``RUN/bench.json``."""
    from cotdistill.stages.pipeline import run_pipeline

    cells = bench_cells(cfg, seeds, variants)
    run_pipeline(run, cfg, until="filter", log=log)
    rows: dict[tuple[str, str], BenchRow] = {}
    t_start = time.perf_counter()
    if cfg.eval.base:
        log("bench: base rows (each student as built, before training)")
        _base_rows(run, cfg, seeds, rows)

    def write(done: int) -> BenchResult:
        secs = round(time.perf_counter() - t_start, 1)
        res = BenchResult(seeds=seeds, seconds=secs, rows=list(rows.values()), cells_done=done, cells_total=len(cells))
        atomic_write_text(run.bench_json, res.dump())
        return res

    for n, cell in enumerate(cells, 1):
        sub = cell.rundir(run).ensure()
        _share(run, sub)
        atomic_write_text(sub.config, dump_config(cell.config))
        log(f"bench: cell {n}/{len(cells)}: {cell.variant.name} / {cell.who} / seed {cell.seed} in {sub.root}")
        _train_eval(run, sub, cell.config, log)
        metrics = json.loads(sub.metrics.read_text(encoding="utf-8"))
        for s in cell.students:
            m = dict(metrics["students"][s.name])
            m["probes"] = {p: r[s.name]["after"]["accuracy"] for p, r in metrics.get("probes", {}).items()}
            _add(rows, cell.variant.name, s.name, cell.variant.group, m)
        write(n)
    return write(len(cells))
