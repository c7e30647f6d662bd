"""The report's first section: did distillation work? Each student before (base) and after training, overall and
per task family, with no-answer and truncation rates, the ensembles, forgetting on the probes, and drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cotdistill.report.document import Figure, Section, Table, Text, fig_png, pct


def _delta(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}"


def _main_table(m: dict[str, Any]) -> Table:
    students, base, delta = m.get("students", {}), m.get("base", {}) or {}, m.get("delta", {}) or {}
    rows = []
    for name, s in students.items():
        b = base.get(name, {})
        rows.append([
            name, pct(b.get("accuracy")) if b else "-", pct(s.get("accuracy")), _delta(delta.get(name)),
            f"{pct(b.get('no_answer_rate'))} -> {pct(s.get('no_answer_rate'))}" if b else pct(s.get("no_answer_rate")),
            pct(s.get("truncation_rate")), str(s.get("n", "")),
        ])  # fmt: skip
    for name, acc in (m.get("ensembles") or {}).items():
        rows.append([f"ensemble: {name}", "-", pct(acc), "-", "-", "-", ""])
    return Table(["model", "base", "distilled", "change (points)", "no answer", "truncated", "n"], rows,
                 caption="base (the student as built, before training) -> distilled", key="base-distilled")  # fmt: skip


def _task_table(m: dict[str, Any]) -> Table | None:
    students, base = m.get("students", {}), m.get("base", {}) or {}
    tasks = sorted({t for s in students.values() for t in s.get("by_task", {})})
    if len(tasks) < 2 and not base:
        return None
    rows = []
    for name, s in students.items():
        for t in tasks:
            b = base.get(name, {}).get("by_task", {}).get(t)
            rows.append([name, t, pct(b), pct(s.get("by_task", {}).get(t))])
    for e, bt in (m.get("ensembles_by_task") or {}).items():
        rows += [[f"ensemble: {e}", t, "-", pct(bt.get(t))] for t in tasks]
    return Table(["model", "task family", "base", "distilled"], rows, caption="per task family")


def _probe_table(m: dict[str, Any]) -> Table | None:
    rows = []
    for probe, per in (m.get("probes") or {}).items():
        for name, r in per.items():
            before, after = r.get("before", {}).get("accuracy"), r.get("after", {}).get("accuracy")
            drop = r.get("drop")
            rows.append([probe, name, pct(before), pct(after), "-" if drop is None else f"{100 * drop:+.1f}"])
    return Table(["probe", "student", "before", "after", "drop (points)"], rows, caption="forgetting") if rows else None


def _drift_table(m: dict[str, Any]) -> Table | None:
    rows = []
    for name, d in (m.get("drift") or {}).items():
        cos = d.get("cosine")
        rows.append([name, f"{d.get('cka', float('nan')):.3f}", "-" if cos is None else f"{cos:.3f}", str(d.get("n"))])
    return Table(["student", "linear CKA", "mean cosine", "n"], rows, caption="representation drift") if rows else None


def _figure(m: dict[str, Any]) -> Figure | None:
    students, base = m.get("students", {}), m.get("base", {}) or {}
    names = list(students)
    if not names:
        return None

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ys = range(len(names))
        after = [100 * students[n].get("accuracy", 0.0) for n in names]
        if base:
            before = [100 * base.get(n, {}).get("accuracy", 0.0) for n in names]
            ax.barh([y + 0.2 for y in ys], before, height=0.4, color="#bbbbbb", label="base")
            ax.barh([y - 0.2 for y in ys], after, height=0.4, color="#4c72b0", label="distilled")
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.barh(list(ys), after, color="#4c72b0")
        ax.set_yticks(list(ys), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")

    return Figure("accuracy", fig_png(draw, 8, 0.8 + 0.6 * len(names)), "Accuracy per student: base and distilled")


def accuracy_section(sec: Section, path: Path) -> None:
    m = json.loads(path.read_text(encoding="utf-8"))
    prompt = f", prompt policy '{m['prompt']}'" if m.get("prompt") else ""
    sec.parts.append(Text(f"Greedy zero-shot accuracy on the '{m.get('split', '?')}' split{prompt}."))
    sec.parts.append(_main_table(m))
    for part in (_figure(m), _task_table(m), _probe_table(m), _drift_table(m)):
        if part is not None:
            sec.parts.append(part)
