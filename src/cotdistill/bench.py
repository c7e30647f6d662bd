"""``cotdistill bench``: methods x seeds on one dataset, giving the paper's two tables.

The data stages (questions, generation, filtering) run once in ``RUN/``; every (variant, seed) then trains and
evaluates in its own run directory ``RUN/bench/<variant>/seed<k>/`` that shares the data files by hard link (or
copy). Single-student methods train each configured student on its own; QR-Distill trains them jointly.
``RUN/bench.json`` collects the accuracies: ``{"seeds": [...], "rows": [{"table", "method", "student",
"accuracies": [...]}]}`` with ``table`` either ``methods`` or ``ablations``; the report renders it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_text
from cotdistill.rundir import RunDir


@dataclass(frozen=True)
class Variant:
    """A bench row: a method plus option overrides (ablations), in one of the two tables."""

    name: str
    method: str
    table: str = "methods"
    options: dict[str, Any] = field(default_factory=dict)
    joint: bool = False  # all students in one run (QR-Distill) rather than one run per student


VARIANTS: tuple[Variant, ...] = (
    Variant("sft-single", "sft-single"),
    Variant("sft-multi", "sft-multi"),
    Variant("step-by-step", "step-by-step"),
    Variant("compact", "compact"),
    Variant("qr-distill", "qr-distill", joint=True),
    Variant("qr-distill w/o QF", "qr-distill", "ablations", {"filter": False}, joint=True),
    Variant("qr-distill w/o routing", "qr-distill", "ablations", {"routing": False}, joint=True),
    Variant("qr-distill w/o peer", "qr-distill", "ablations", {"peer": False}, joint=True),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)

_DATA_FILES = ("questions.jsonl", "paths.jsonl", "filtered.jsonl", "filter_stats.json")


def _share(src: RunDir, dst: RunDir) -> None:
    for name in _DATA_FILES:
        s, d = src.root / name, dst.root / name
        if s.exists() and not d.exists():
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)


def _slug(name: str) -> str:
    return name.replace("/", "").replace(" ", "-")


def _train_eval(run: RunDir, sub: RunDir, cfg: RunConfig, log: Callable[[str], None]) -> None:
    """Train and evaluate one bench cell unless its stamp says it already finished with this config and data."""
    from cotdistill.config import dump_config
    from cotdistill.pipeline import STAGES, read_stamp

    data = read_stamp(run, "filter") or {}
    key = hashlib.sha256((dump_config(cfg) + str(data.get("fingerprint"))).encode()).hexdigest()[:16]
    stamp = sub.root / "stages" / "bench.json"
    if stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")).get("key") == key:
        log("[bench] up to date, skipped")
        return
    for st in STAGES:
        if st.name in ("train", "eval"):
            st.run(sub, cfg)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps({"key": key}))


def run_bench(
    run: RunDir,
    cfg: RunConfig,
    seeds: list[int],
    variants: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Data once, then train + eval for every variant x seed; writes and returns ``RUN/bench.json``."""
    from cotdistill.config import dump_config
    from cotdistill.errors import CotdistillError
    from cotdistill.pipeline import run_pipeline

    chosen = [v for v in VARIANTS if variants is None or v.name in variants]
    unknown = sorted(set(variants or []) - set(VARIANT_NAMES))
    if unknown:
        raise CotdistillError(f"unknown bench variant(s): {', '.join(unknown)} (known: {', '.join(VARIANT_NAMES)})")
    run_pipeline(run, cfg, until="filter", log=log)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    t_start = time.perf_counter()
    for v in chosen:
        groups = [cfg.students] if v.joint else [[s] for s in cfg.students]
        for students in groups:
            for seed in seeds:
                sub = RunDir.at(run.root / "bench" / _slug(v.name) / "-".join(s.name for s in students) / f"seed{seed}")
                sub.ensure()
                _share(run, sub)
                opts = {**cfg.train.options, **v.options}
                scfg = cfg.model_copy(
                    update={
                        "seed": seed,
                        "students": students,
                        "train": cfg.train.model_copy(update={"method": v.method, "options": opts}),
                    }
                )
                atomic_write_text(sub.config, dump_config(scfg))
                log(f"[bench] {v.name} / {'+'.join(s.name for s in students)} / seed {seed}")
                _train_eval(run, sub, scfg, log)
                metrics = json.loads((sub.eval / "metrics.json").read_text(encoding="utf-8"))
                for s in students:
                    row = rows.setdefault(
                        (v.name, s.name),
                        {"table": v.table, "method": v.name, "student": s.name, "accuracies": []},
                    )
                    row["accuracies"].append(metrics["students"][s.name]["accuracy"])
    result = {
        "seeds": seeds,
        "seconds": round(time.perf_counter() - t_start, 1),
        "rows": [
            {
                **r,
                "mean": statistics.fmean(r["accuracies"]),
                "std": statistics.stdev(r["accuracies"]) if len(r["accuracies"]) > 1 else 0.0,
            }
            for r in rows.values()
        ],
    }
    atomic_write_text(run.root / "bench.json", json.dumps(result, indent=2))
    return result
