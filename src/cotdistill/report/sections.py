"""The report's sections, each built from one run-directory file (see :mod:`cotdistill.report`)."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cotdistill.io import iter_objects
from cotdistill.report.accuracy import accuracy_section
from cotdistill.report.document import Figure, Part, Pre, Section, Table, Text, fig_png, pct
from cotdistill.results import BenchResult, BenchRow
from cotdistill.rundir import RunDir
from cotdistill.training.methods.compact.plot import moving_average


def _skipped_note(skipped: list[int], path: Path) -> list[Part]:
    return [Text(f"{skipped[0]} line(s) of {path.name} did not parse and were skipped.")] if skipped[0] else []


def filter_section(sec: Section, path: Path) -> None:
    st = json.loads(path.read_text(encoding="utf-8"))
    total, kept = int(st.get("total", 0)), int(st.get("kept", 0))
    sec.parts.append(Text(f"Kept {kept} of {total} paths ({pct(kept / total if total else None)})."))
    groups: dict[str, dict[str, Any]] = {}
    for key, label in (("by_teacher", "teacher"), ("by_style", "style")):
        d = st.get(key) or {}
        if d:
            groups[label] = d
            rows = [
                [
                    k,
                    str(v.get("total", 0)),
                    str(v.get("kept", 0)),
                    pct(v["kept"] / v["total"] if v.get("total") else None),
                ]
                for k, v in d.items()
            ]
            sec.parts.append(Table([label, "total", "kept", "kept %"], rows, caption=f"per {label}"))
    reasons = st.get("by_reason") or {}
    if reasons:
        rejected = sum(reasons.values())
        rows = [
            [r, str(n), pct(n / rejected if rejected else None)]
            for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])
        ]
        sec.parts.append(Table(["reject reason", "paths", "share of rejected"], rows, caption="rejections"))
    if groups:

        def draw(fig: Any) -> None:
            axes = fig.subplots(1, len(groups), squeeze=False)[0]
            for ax, (label, d) in zip(axes, groups.items(), strict=True):
                names = list(d)
                tot = [d[n].get("total", 0) for n in names]
                kp = [d[n].get("kept", 0) for n in names]
                ax.bar(names, tot, color="#cccccc", label="total")
                ax.bar(names, kp, color="#55a868", label="kept")
                ax.set_title(f"per {label}")
                ax.tick_params(axis="x", rotation=45)
                ax.legend(fontsize=8)

        sec.parts.append(Figure("filter", fig_png(draw, 10, 4), "Kept and total paths per teacher and style"))


def routing_rates(
    path: Path, skipped: list[int] | None = None, fallbacks: bool = True
) -> dict[str, dict[int, dict[str, tuple[int, int]]]]:
    """student -> epoch -> style -> (decisions, gates opened), streamed from ``logs/routing.jsonl``; with
    ``fallbacks=False`` a gate opened only by the fallback rule (``fallback: true``) does not count as opened."""
    skipped = skipped if skipped is not None else [0]
    acc: dict[str, dict[int, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0]))
    )
    for r in iter_objects(path, skipped):
        try:
            cell = acc[str(r["student"])][int(r["epoch"])][str(r["style"])]
            cell[0] += 1
            cell[1] += int(r["gate"]) if fallbacks or not r.get("fallback") else 0
        except (KeyError, TypeError, ValueError):
            skipped[0] += 1
    return {s: {e: {st: (c[0], c[1]) for st, c in d.items()} for e, d in sorted(ep.items())} for s, ep in acc.items()}


def _rate_rows(rates: dict[str, dict[int, dict[str, tuple[int, int]]]], epochs: list[int], styles: list[str]):
    rows = []
    for e in epochs:
        for st in styles:
            row = [str(e), st]
            for s in rates:
                n, g = rates[s].get(e, {}).get(st, (0, 0))
                row.append(pct(g / n) if n else "-")
            rows.append(row)
    return rows


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def router_diagnostics(sec: Section, path: Path) -> None:
    """The per-student lines of ``logs/routing_rates.jsonl`` (written by qr-distill at each epoch's end)."""
    skipped = [0]
    recs = [r for r in iter_objects(path, skipped) if isinstance(r, dict) and r.get("kind") == "student"]
    sec.parts += _skipped_note(skipped, path)
    if not recs:
        return
    sec.parts.append(Text(
        "Router diagnostics per epoch (logs/routing_rates.jsonl): the gate probability sigmoid(logit) per student "
        "(mean, std), the selection rate with and without fallbacks, the student's share of the fallback paths, "
        "the share of paths that fell back, and the Spearman correlation between a gate's probability and the "
        "student's centred loss on the path (negative: the router opens the gates of paths below the student's "
        "average; about 0: coin flips)."
    ))  # fmt: skip
    rows = [
        [str(r.get("epoch")), str(r.get("student")), _num(r.get("prob_mean"), ".3f"), _num(r.get("prob_std"), ".3f"),
         pct(r.get("rate")), pct(r.get("rate_no_fallback")), pct(r.get("fallback_share")), pct(r.get("fallback_rate")),
         _num(r.get("spearman"), "+.3f")]
        for r in recs
    ]  # fmt: skip
    head = ["epoch", "student", "p mean", "p std", "rate", "rate w/o fallback", "fallback share", "fell back",
            "Spearman(p, centred loss)"]  # fmt: skip
    sec.parts.append(Table(head, rows))


def routing_section(sec: Section, path: Path) -> None:
    skipped = [0]
    rates = routing_rates(path, skipped)
    sec.parts += _skipped_note(skipped, path)
    if not rates:
        sec.parts.append(Text("The routing log holds no decisions."))
        return
    students = list(rates)
    epochs = sorted({e for s in rates.values() for e in s})
    styles = sorted({st for s in rates.values() for d in s.values() for st in d})
    sec.parts.append(
        Text("Share of each style's paths routed to each student (gate = 1), per epoch. Rows: epoch and style.")
    )
    sec.parts.append(Table(["epoch", "style", *students], _rate_rows(rates, epochs, styles)))
    own = routing_rates(path, fallbacks=False)
    sec.parts.append(Text(
        "The same without fallbacks: a gate opened only because no gate of the path opened (the path then goes to "
        "the student with the largest noisy score) does not count. This is the router's own preference."
    ))  # fmt: skip
    sec.parts.append(Table(["epoch", "style", *students], _rate_rows(own, epochs, styles)))
    diag = path.parent / "routing_rates.jsonl"
    if diag.exists():
        router_diagnostics(sec, diag)

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, len(students), squeeze=False)[0]
        im = None
        for ax, s in zip(axes, students, strict=True):
            grid = [
                [
                    (rates[s].get(e, {}).get(st, (0, 0))[1] / rates[s][e][st][0])
                    if rates[s].get(e, {}).get(st, (0, 0))[0]
                    else float("nan")
                    for e in epochs
                ]
                for st in styles
            ]
            im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_title(s)
            ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
            ax.set_yticks(range(len(styles)), styles)
            ax.set_xlabel("epoch")
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    if not math.isnan(v):
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        if im is not None:
            fig.colorbar(im, ax=list(axes), label="selection rate")

    width = min(16, 1.5 + 3.2 * len(students) + 0.25 * len(epochs) * len(students))
    sec.parts.append(Figure("routing", fig_png(draw, width, 1.2 + 0.45 * len(styles)), "Selection rate per style"))


COMPACT_SIGNALS = ("S_MI", "S_cons", "S_PPL", "L_MCon", "C", "A", "D")  # the paper variant's, then v1's


def compact_section(sec: Section, path: Path) -> None:
    """Per teacher: mean weight, mean signals (those the log holds), the share of questions on which it has the top
    weight; and the weight trajectory over steps."""
    skipped = [0]
    per_step: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    decisions: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
    for r in iter_objects(path, skipped):
        try:
            t, step, w = str(r["teacher"]), int(r["step"]), float(r["weight"])
        except (KeyError, TypeError, ValueError):
            skipped[0] += 1
            continue
        per_step[t][step].append(w)
        totals[t]["weight"].append(w)
        decisions[(step, str(r.get("question_id", "")))][t] = w
        for k in COMPACT_SIGNALS:
            v = r.get(k)
            if isinstance(v, int | float) and not math.isnan(v):
                totals[t][k].append(float(v))
    sec.parts += _skipped_note(skipped, path)
    if not per_step:
        sec.parts.append(Text("The weight log holds no records."))
        return
    teachers = sorted(per_step)
    top: dict[str, float] = defaultdict(float)
    for ws in decisions.values():
        best = [t for t, w in ws.items() if w >= max(ws.values()) - 1e-12]
        for t in best:
            top[t] += 1 / len(best)
    signals = [k for k in COMPACT_SIGNALS if any(totals[t][k] for t in teachers)]

    def mean(xs: list[float]) -> str:
        return f"{statistics.fmean(xs):.3f}" if xs else "-"

    rows = [
        [t, str(len(totals[t]["weight"])), *[mean(totals[t][k]) for k in ("weight", *signals)],
         pct(top[t] / len(decisions))]
        for t in teachers
    ]  # fmt: skip
    sec.parts.append(
        Text(
            "Per-question teacher weights: mean over all logged (question, teacher) records; 'top weight' is the "
            "share of (step, question) decisions in which the teacher has the largest weight (ties split)."
        )
    )
    header = ["teacher", "records", "mean weight", *[f"mean {k}" for k in signals], "top weight"]
    sec.parts.append(Table(header, rows))

    n_steps = max(len(per_step[t]) for t in teachers)
    window = max(1, n_steps // 20)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for i, t in enumerate(teachers):
            steps = sorted(per_step[t])
            ws = [statistics.fmean(per_step[t][s]) for s in steps]
            ax.plot(steps, ws, color=f"C{i}", lw=0.6, alpha=0.3)
            ax.plot(steps, moving_average(ws, window), color=f"C{i}", lw=1.6, label=t)
        ax.axhline(1 / len(teachers), color="grey", ls="--", lw=1, label=f"1/K = 1/{len(teachers)}")
        ax.set_xlabel("step")
        ax.set_ylabel("mean weight")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)

    caption = "Mean weight per teacher per step (faint) and its moving average over"
    sec.parts.append(Figure("compact_weights", fig_png(draw, 8, 3.5), f"{caption} {window} step(s) (bold)"))


def loss_section(sec: Section, path: Path) -> None:
    skipped = [0]
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in iter_objects(path, skipped):
        losses = r.get("losses")
        if not isinstance(losses, dict) or not isinstance(r.get("step"), int):
            skipped[0] += 1
            continue
        for k, v in losses.items():
            if isinstance(v, int | float):
                series[str(k)].append((r["step"], float(v)))
    sec.parts += _skipped_note(skipped, path)
    if not series:
        sec.parts.append(Text("The metrics log holds no losses."))
        return
    names = sorted(series, key=lambda n: (n == "total", n))
    rows = []
    for n in names:
        vals = [v for _, v in series[n]]
        rows.append([n, str(len(vals)), f"{vals[0]:.4g}", f"{vals[-1]:.4g}", f"{min(vals):.4g}"])
    sec.parts.append(Table(["loss", "steps", "first", "last", "min"], rows))
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)

    def draw(fig: Any) -> None:
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        for ax, n in zip(axes, names, strict=False):
            pts = sorted(series[n])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
            ax.set_title(n, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in axes[len(names) :]:
            ax.set_visible(False)

    sec.parts.append(Figure("losses", fig_png(draw, 3.6 * cols, 2.6 * nrows), "Loss components over steps"))


def bench_section(sec: Section, path: Path) -> None:
    b = BenchResult.model_validate_json(path.read_text(encoding="utf-8"))
    seeds = b.seeds
    if b.partial:
        sec.parts.append(
            Text(f"Partial: {b.cells_done} of {b.cells_total} cells have run (the bench is running or was stopped).")
        )
    given = ", ".join(map(str, seeds)) or "(none given)"
    sec.parts.append(Text(f"Accuracy in %, mean ± sample std and each seed's value, over seeds {given}."))
    for group, rows in b.groups().items():
        students = list(dict.fromkeys(r.student for r in rows))
        methods = list(dict.fromkeys(r.method for r in rows))
        cell: dict[tuple[str, str], str] = {}
        for r in rows:
            cell[(r.method, r.student)] = bench_cell_text(r, seeds)
        table_rows = [[m, *[cell.get((m, s), "-") for s in students]] for m in methods]
        sec.parts.append(Table(["method", *students], table_rows, caption=group))
    _bench_extras(sec, b)


def bench_cell_text(r: BenchRow, seeds: list[int]) -> str:
    """``mean ± std (each seed's value)`` in %; ``n=k:`` before the values when the row has fewer seeds; a row of
    one seed is ``value (one seed)``."""
    if len(r.accuracies) < 2:
        return r.mean_std() if r.accuracies else "-"
    n = f"n={len(r.accuracies)}: " if seeds and len(r.accuracies) != len(seeds) else ""
    return f"{r.mean_std()} ({n}{r.per_seed})"


def _bench_extras(sec: Section, b: BenchResult) -> None:
    """No-answer and truncation rates and the probes (forgetting) of every row, mean over its seeds, in %."""
    keys = list(dict.fromkeys(k for r in b.rows for k in r.extras))
    if not keys:
        return
    rows = [
        [r.method, r.student, *[f"{100 * statistics.fmean(r.extras[k]):.1f}" if r.extras.get(k) else "-" for k in keys]]
        for r in b.rows
    ]
    heads = [k.replace("_rate", "").replace("_", " ").replace("probe/", "probe ") + " %" for k in keys]
    sec.parts.append(Table(["method", "student", *heads], rows, caption="other figures (mean over seeds)"))


def config_section(sec: Section, path: Path) -> None:
    sec.parts.append(Pre(path.read_text(encoding="utf-8"), "yaml"))


BUILDERS: list[tuple[str, str, str, Callable[[Section, Path], None]]] = [
    ("accuracy", "Accuracy", "eval/metrics.json", accuracy_section),
    ("bench", "Benchmark (methods x students over seeds)", "bench.json", bench_section),
    ("filter", "Quality filter", "filter_stats.json", filter_section),
    ("routing", "Routing selection rates", "logs/routing.jsonl", routing_section),
    ("compact", "COMPACT teacher weights", "logs/compact_weights.jsonl", compact_section),
    ("losses", "Training losses", "logs/train_metrics.jsonl", loss_section),
    ("config", "Resolved config", "config.yaml", config_section),
]


def build_sections(run: RunDir) -> list[Section]:
    """Every section in report order: one whose source file is absent is marked not run; an unreadable input
    becomes a note in its section, never a crash. A builder fills ``sec.parts`` from its source ``path``."""
    out = []
    for key, title, source, build in BUILDERS:
        sec = Section(key, title, source)
        path = run.root / source
        if not path.exists():
            sec.present = False
        else:
            try:
                build(sec, path)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                sec.parts = [Text(f"could not read {source}: {type(e).__name__}: {' '.join(str(e).split())}")]
        out.append(sec)
    return out
