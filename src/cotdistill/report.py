"""The run report: one self-contained HTML page (``RUN/report.html``) and its markdown twin (``RUN/report.md``).

Every section is built from a run-directory file and appears with "not run" when that file is absent:

- **Accuracy** (``eval/metrics.json``): students and ensembles, overall and per task family, truncation rate.
- **Filter** (``filter_stats.json``): kept / total per teacher and per style, rejections per reason.
- **Routing** (``logs/routing.jsonl``): per epoch and style, the share of paths whose gate opened (``gate == 1``)
  for each student; one heatmap per student (styles x epochs).
- **COMPACT weights** (``logs/compact_weights.jsonl``): mean weight per teacher at each step (lines), and per
  teacher mean weight / C / A / D.
- **Losses** (``logs/train_metrics.jsonl``): one curve per loss component over optimizer steps.
- **Benchmark** (``bench.json``), written by ``cotdistill bench`` or by hand::

      {"seeds": [0, 1, 2],
       "rows": [{"method": "qr-distill", "student": "gpt2-a", "accuracies": [0.41, 0.44, 0.43]},
                {"method": "qr-distill w/o QF", "student": "gpt2-a", "accuracies": [...], "group": "ablation"}]}

  ``accuracies`` are fractions in [0, 1], one per seed. One table per ``group`` (default ``main``): methods as
  rows, students as columns, each cell ``mean ± std`` in percent (sample standard deviation; n shown when it
  differs from the number of seeds).
- **Config** (``config.yaml``): the resolved run config.

Figures are matplotlib PNGs (Agg backend, no display needed): embedded as base64 ``data:`` URIs in the HTML
(inline CSS, no external URL, so the file can be mailed or archived alone) and written as files in
``RUN/report_files/`` for the markdown. A log line that does not parse (a torn last line, say) is skipped and
counted; a file that cannot be read at all turns its section into an error note instead of failing the report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from cotdistill.io import atomic_write_text
from cotdistill.rundir import RunDir

# ---------------------------------------------------------------------------------------------------------------
# A tiny document model rendered to both HTML and markdown


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file stem in report_files/
    png: bytes
    caption: str = ""


@dataclass
class Text:
    text: str


@dataclass
class Pre:
    text: str
    lang: str = ""


Part = Table | Figure | Text | Pre


@dataclass
class Section:
    key: str
    title: str
    source: str  # the run file it comes from
    parts: list[Part] = field(default_factory=list)
    present: bool = True


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _fig_png(draw: Callable[[Any], None], width: float = 8.0, height: float = 4.0) -> bytes:
    """Draw on a fresh matplotlib Figure (Agg canvas, no pyplot state) and return PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _iter_jsonl(path: Path, skipped: list[int]) -> Iterator[dict[str, Any]]:
    """Records of a log file; lines that do not parse as a JSON object are skipped and counted in ``skipped``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                skipped[0] += 1
                continue
            if isinstance(rec, dict):
                yield rec
            else:
                skipped[0] += 1


def _skipped_note(skipped: list[int], path: Path) -> list[Part]:
    return [Text(f"{skipped[0]} line(s) of {path.name} did not parse and were skipped.")] if skipped[0] else []


# ---------------------------------------------------------------------------------------------------------------
# Sections


def accuracy_section(sec: Section, path: Path) -> None:
    m = json.loads(path.read_text(encoding="utf-8"))
    students: dict[str, Any] = m.get("students", {})
    ens: dict[str, float] = m.get("ensembles", {}) or {}
    ens_task: dict[str, dict[str, float]] = m.get("ensembles_by_task", {}) or {}
    tasks = sorted({t for s in students.values() for t in s.get("by_task", {})})
    rows = []
    for name, s in students.items():
        bt = s.get("by_task", {})
        rows.append(
            [name, "student", _pct(s.get("accuracy")), str(s.get("n", "")), *[_pct(bt.get(t)) for t in tasks]]
            + [_pct(s.get("truncation_rate"))]
        )
    for name, acc in ens.items():
        bt = ens_task.get(name, {})
        rows.append([f"ensemble: {name}", "ensemble", _pct(acc), "", *[_pct(bt.get(t)) for t in tasks], ""])
    sec.parts.append(Text(f"Greedy zero-shot accuracy on the '{m.get('split', '?')}' split."))
    sec.parts.append(Table(["model", "kind", "accuracy", "n", *tasks, "truncated"], rows))
    labels = list(students) + [f"ensemble: {e}" for e in ens]
    values = [students[s].get("accuracy", 0.0) for s in students] + [ens[e] for e in ens]
    if labels:

        def draw(fig: Any) -> None:
            ax = fig.add_subplot()
            colors = ["#4c72b0"] * len(students) + ["#dd8452"] * len(ens)
            ax.barh(labels[::-1], [100 * v for v in values][::-1], color=colors[::-1])
            ax.set_xlim(0, 100)
            ax.set_xlabel("accuracy (%)")
            for i, v in enumerate(values[::-1]):
                ax.text(100 * v + 1, i, f"{100 * v:.1f}", va="center", fontsize=8)

        sec.parts.append(Figure("accuracy", _fig_png(draw, 8, 0.5 + 0.45 * len(labels)), "Accuracy per model"))


def filter_section(sec: Section, path: Path) -> None:
    st = json.loads(path.read_text(encoding="utf-8"))
    total, kept = int(st.get("total", 0)), int(st.get("kept", 0))
    sec.parts.append(Text(f"Kept {kept} of {total} paths ({_pct(kept / total if total else None)})."))
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
                    _pct(v["kept"] / v["total"] if v.get("total") else None),
                ]
                for k, v in d.items()
            ]
            sec.parts.append(Table([label, "total", "kept", "kept %"], rows, caption=f"per {label}"))
    reasons = st.get("by_reason") or {}
    if reasons:
        rejected = sum(reasons.values())
        rows = [
            [r, str(n), _pct(n / rejected if rejected else None)]
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

        sec.parts.append(Figure("filter", _fig_png(draw, 10, 4), "Kept and total paths per teacher and style"))


def routing_rates(path: Path, skipped: list[int] | None = None) -> dict[str, dict[int, dict[str, tuple[int, int]]]]:
    """student -> epoch -> style -> (decisions, gates opened), streamed from ``logs/routing.jsonl``."""
    skipped = skipped if skipped is not None else [0]
    acc: dict[str, dict[int, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0]))
    )
    for r in _iter_jsonl(path, skipped):
        try:
            cell = acc[str(r["student"])][int(r["epoch"])][str(r["style"])]
            cell[0] += 1
            cell[1] += int(r["gate"])
        except (KeyError, TypeError, ValueError):
            skipped[0] += 1
    return {s: {e: {st: (c[0], c[1]) for st, c in d.items()} for e, d in sorted(ep.items())} for s, ep in acc.items()}


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
    rows = []
    for e in epochs:
        for st in styles:
            row = [str(e), st]
            for s in students:
                n, g = rates[s].get(e, {}).get(st, (0, 0))
                row.append(_pct(g / n) if n else "-")
            rows.append(row)
    sec.parts.append(Table(["epoch", "style", *students], rows))

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
    sec.parts.append(Figure("routing", _fig_png(draw, width, 1.2 + 0.45 * len(styles)), "Selection rate per style"))


def compact_section(sec: Section, path: Path) -> None:
    skipped = [0]
    per_step: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _iter_jsonl(path, skipped):
        try:
            t, step, w = str(r["teacher"]), int(r["step"]), float(r["weight"])
        except (KeyError, TypeError, ValueError):
            skipped[0] += 1
            continue
        per_step[t][step].append(w)
        totals[t]["weight"].append(w)
        for k in ("C", "A", "D"):
            v = r.get(k)
            if isinstance(v, int | float) and not math.isnan(v):
                totals[t][k].append(float(v))
    sec.parts += _skipped_note(skipped, path)
    if not per_step:
        sec.parts.append(Text("The weight log holds no records."))
        return
    teachers = sorted(per_step)

    def mean(xs: list[float]) -> str:
        return f"{statistics.fmean(xs):.3f}" if xs else "-"

    rows = [
        [t, str(len(totals[t]["weight"])), *[mean(totals[t][k]) for k in ("weight", "C", "A", "D")]] for t in teachers
    ]
    sec.parts.append(Text("Per-question teacher weights: mean over all logged (question, teacher) records."))
    sec.parts.append(Table(["teacher", "records", "mean weight", "mean C", "mean A", "mean D"], rows))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for t in teachers:
            steps = sorted(per_step[t])
            ax.plot(steps, [statistics.fmean(per_step[t][s]) for s in steps], label=t, lw=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel("mean weight")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)

    sec.parts.append(Figure("compact_weights", _fig_png(draw, 8, 3.5), "Mean weight per teacher over steps"))


def loss_section(sec: Section, path: Path) -> None:
    skipped = [0]
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in _iter_jsonl(path, skipped):
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

    sec.parts.append(Figure("losses", _fig_png(draw, 3.6 * cols, 2.6 * nrows), "Loss components over steps"))


def bench_section(sec: Section, path: Path) -> None:
    b = json.loads(path.read_text(encoding="utf-8"))
    seeds = b.get("seeds", [])
    rows_in = b.get("rows", [])
    if not isinstance(rows_in, list):
        raise ValueError("'rows' must be a list")
    sec.parts.append(Text(f"Accuracy, mean ± sample std over seeds {', '.join(map(str, seeds)) or '(none given)'}."))
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows_in:
        by_group[str(r.get("group", "main"))].append(r)
    for group, rows in by_group.items():
        students = list(dict.fromkeys(str(r["student"]) for r in rows))
        methods = list(dict.fromkeys(str(r["method"]) for r in rows))
        cell: dict[tuple[str, str], str] = {}
        for r in rows:
            accs = [float(a) for a in r.get("accuracies", [])]
            if not accs:
                txt = "-"
            else:
                mu = 100 * statistics.fmean(accs)
                sd = 100 * statistics.stdev(accs) if len(accs) > 1 else 0.0
                txt = f"{mu:.1f} ± {sd:.1f}" + (f" (n={len(accs)})" if seeds and len(accs) != len(seeds) else "")
            cell[(str(r["method"]), str(r["student"]))] = txt
        table_rows = [[m, *[cell.get((m, s), "-") for s in students]] for m in methods]
        sec.parts.append(Table(["method", *students], table_rows, caption=group))


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
                sec.parts = [Text(f"could not read {source}: {type(e).__name__}: {e}")]
        out.append(sec)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _html_part(p: Part) -> str:
    if isinstance(p, Text):
        return f"<p>{html.escape(p.text)}</p>"
    if isinstance(p, Pre):
        return f'<pre class="{html.escape(p.lang)}">{html.escape(p.text)}</pre>'
    if isinstance(p, Figure):
        b64 = base64.b64encode(p.png).decode("ascii")
        cap = html.escape(p.caption)
        return (
            f'<figure><img alt="{cap}" data-figure="{html.escape(p.name)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{cap}</figcaption></figure>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in p.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in p.rows)
    cap = f"<caption>{html.escape(p.caption)}</caption>" if p.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(run: RunDir, sections: list[Section], generated: str) -> str:
    """The whole report as one HTML string (template: ``report_template.html`` beside this module)."""
    template = Template(resources.files("cotdistill").joinpath("report_template.html").read_text(encoding="utf-8"))
    toc = "".join(
        f'<li><a href="#{s.key}">{html.escape(s.title)}</a>{"" if s.present else " <em>(not run)</em>"}</li>'
        for s in sections
    )
    body = []
    for s in sections:
        inner = (
            "".join(_html_part(p) for p in s.parts)
            if s.present
            else f'<p class="notrun">not run (no {html.escape(s.source)})</p>'
        )
        body.append(
            f'<section id="{s.key}" class="{"present" if s.present else "absent"}"><h2>{html.escape(s.title)}</h2>'
            f'<p class="src">source: {html.escape(s.source)}</p>{inner}</section>'
        )
    return template.substitute(
        title=html.escape(f"cotdistill report: {run.root.name}"),
        run=html.escape(str(run.root)),
        generated=html.escape(generated),
        toc=toc,
        body="\n".join(body),
    )


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_part(p: Part, files_dir: str) -> str:
    if isinstance(p, Text):
        return p.text
    if isinstance(p, Pre):
        return f"```{p.lang}\n{p.text.rstrip()}\n```"
    if isinstance(p, Figure):
        return f"![{p.caption}]({files_dir}/{p.name}.png)"
    lines = []
    if p.caption:
        lines.append(f"*{p.caption}*\n")
    lines.append("| " + " | ".join(_md_cell(h) for h in p.headers) + " |")
    lines.append("|" + "|".join("---" for _ in p.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in p.rows]
    return "\n".join(lines)


def render_markdown(run: RunDir, sections: list[Section], generated: str, files_dir: str = "report_files") -> str:
    """The markdown twin; figures referenced as ``report_files/<name>.png`` relative to the report."""
    out = [f"# cotdistill report: {run.root.name}", "", f"Run `{run.root}`, generated {generated}.", ""]
    for s in sections:
        out += [f"## {s.title}", "", f"source: `{s.source}`", ""]
        if not s.present:
            out += [f"not run (no `{s.source}`)", ""]
            continue
        for p in s.parts:
            out += [_md_part(p, files_dir), ""]
    return "\n".join(out)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(run_dir: str | Path) -> tuple[Path, Path, list[Section]]:
    """Build every section from the run's files and write report.html, report.md and report_files/*.png."""
    from cotdistill.errors import CotdistillError

    run = RunDir.at(run_dir)
    if not run.root.is_dir():
        raise CotdistillError(f"{run.root}: run directory not found")
    sections = build_sections(run)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    files = run.root / "report_files"
    figures = [p for s in sections for p in s.parts if isinstance(p, Figure)]
    for f in figures:
        _atomic_write_bytes(files / f"{f.name}.png", f.png)
    if files.is_dir():  # figures of sections that are gone now
        keep = {f"{f.name}.png" for f in figures}
        for old in files.glob("*.png"):
            if old.name not in keep:
                old.unlink()
    html_path, md_path = run.root / "report.html", run.root / "report.md"
    atomic_write_text(html_path, render_html(run, sections, generated))
    atomic_write_text(md_path, render_markdown(run, sections, generated))
    return html_path, md_path, sections
