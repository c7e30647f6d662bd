"""What a stage read and wrote, in one line read back from the run's files (so a skipped stage is described as
well as one that just ran), and the closing summary table of ``cotdistill run`` / ``demo``."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from cotdistill.io import count_lines, iter_objects
from cotdistill.rundir import RunDir


def _json(path: Any) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, int | float) else "-"


def describe(stage: str, run: RunDir) -> str:
    """One line about ``stage``'s outputs in ``run`` ("" when there is nothing to say)."""
    if stage == "questions":
        splits = Counter(str(o.get("split")) for o in iter_objects(run.questions))
        return f"{run.questions.name}: " + ", ".join(f"{n} {s}" for s, n in splits.items())
    if stage == "generate":
        return f"{run.paths.name}: {count_lines(run.paths)} paths"
    if stage == "filter":
        st = _json(run.filter_stats)
        return f"kept {st.get('kept', '?')} of {st.get('total', '?')} paths -> {run.filtered.name}" if st else ""
    if stage == "train":
        s = _json(run.train_summary)
        if not s:
            return ""
        return (f"{', '.join(s.get('students', []))} with {s.get('method')}: {s.get('steps')} steps, "
                f"{s.get('examples')} examples, {s.get('tokens_per_s', 0):,.0f} tokens/s -> students/")  # fmt: skip
    if stage == "eval":
        m = _json(run.metrics)
        base = m.get("base", {})
        parts = [
            f"{n} {_pct(base[n]['accuracy']) + ' -> ' if n in base else ''}{_pct(s.get('accuracy'))}"
            for n, s in m.get("students", {}).items()
        ]
        return f"{m.get('split', '?')} accuracy: {'; '.join(parts)}" if parts else ""
    if stage == "report":
        return str(run.report_html) if run.report_html.exists() else ""
    return ""


def summary_table(run: RunDir) -> Any | None:
    """A rich table: each student base -> distilled accuracy (and per task family), the ensembles, the kept
    paths; None when the run has no metrics."""
    from rich.table import Table

    m = _json(run.metrics)
    if not m.get("students"):
        return None
    st = _json(run.filter_stats)
    kept = f", kept paths {st['kept']}/{st['total']}" if st else ""
    tasks = sorted({t for s in m["students"].values() for t in s.get("by_task", {})})
    table = Table(title=f"{run.root.name}: accuracy on '{m.get('split')}' (base -> distilled){kept}")
    for col in ("model", "base", "distilled", *tasks, "no answer"):
        table.add_column(col, justify="left" if col == "model" else "right")
    base = m.get("base", {})
    for name, s in m["students"].items():
        b = base.get(name, {})
        per_task = [f"{_pct(b.get('by_task', {}).get(t)) + ' -> ' if b else ''}{_pct(s['by_task'].get(t))}"
                    for t in tasks]  # fmt: skip
        table.add_row(name, _pct(b.get("accuracy")) if b else "-", _pct(s.get("accuracy")), *per_task,
                      _pct(s.get("no_answer_rate")))  # fmt: skip
    for e, acc in (m.get("ensembles") or {}).items():
        bt = (m.get("ensembles_by_task") or {}).get(e, {})
        table.add_row(f"ensemble: {e}", "-", _pct(acc), *[_pct(bt.get(t)) for t in tasks], "-")
    return table
