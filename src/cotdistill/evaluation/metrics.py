"""``metrics.json`` from per-student answer records: accuracy overall and per task family, truncation rate,
and the ensembles of two or more students; and its console table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from cotdistill.evaluation.ensembles import logprob_pick, vote
from cotdistill.records import SCHEMA_VERSION, Question
from cotdistill.tasks import get_family


def _acc(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 6) if flags else 0.0


def compute_metrics(
    split: str,
    per_student: dict[str, list[dict[str, Any]]],
    questions: Sequence[Question],
    ensembles: Sequence[str] = ("vote", "logprob"),
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metrics.json from per-student output records (each list in ``questions`` order); ensembles with 2+ students.

    The returned dict also holds ``_ensemble_records`` (per-question picks), which the caller pops and saves.
    """
    students: dict[str, Any] = {}
    for name, recs in per_student.items():
        by_task: dict[str, list[bool]] = defaultdict(list)
        for r in recs:
            by_task[r["task"]].append(r["correct"])
        students[name] = {
            "accuracy": _acc([r["correct"] for r in recs]),
            "n": len(recs),
            "by_task": {t: _acc(v) for t, v in sorted(by_task.items())},
            "truncation_rate": _acc([r["truncated"] for r in recs]),
        }
        if sources and name in sources:
            students[name]["source"] = sources[name]
    ens: dict[str, float] = {}
    ens_by_task: dict[str, dict[str, float]] = {}
    ens_records: list[dict[str, Any]] = []
    names = list(per_student)
    if len(names) >= 2 and ensembles:
        flags: dict[str, list[bool]] = {e: [] for e in ensembles}
        flags_task: dict[str, dict[str, list[bool]]] = {e: defaultdict(list) for e in ensembles}
        for qi, q in enumerate(questions):
            fam = get_family(q.task)
            answers = [per_student[n][qi]["answer"] for n in names]
            scores = [per_student[n][qi]["mean_logprob"] for n in names]
            rec: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "question_id": q.id, "task": q.task}
            for e in ensembles:
                if e == "vote":
                    pick = vote(answers, same=fam.equivalent)
                else:
                    pick = logprob_pick(answers, scores)
                ok = bool(fam.equivalent(pick, q.gold))
                flags[e].append(ok)
                flags_task[e][q.task].append(ok)
                rec[e] = {"answer": pick, "correct": ok}
            ens_records.append(rec)
        ens = {e: _acc(v) for e, v in flags.items()}
        ens_by_task = {e: {t: _acc(v) for t, v in sorted(d.items())} for e, d in flags_task.items()}
    return {
        "split": split,
        "students": students,
        "ensembles": ens,
        "ensembles_by_task": ens_by_task,
        "_ensemble_records": ens_records,
    }


def metrics_table(metrics: dict[str, Any]) -> Any:
    """A rich table of metrics.json: students and ensembles, overall and per task family."""
    from rich.table import Table

    tasks = sorted({t for s in metrics["students"].values() for t in s["by_task"]})
    table = Table(title=f"eval on split '{metrics['split']}'")
    for col in ("model", "accuracy", "n", *tasks, "truncated"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in metrics["students"].items():
        table.add_row(
            name,
            f"{s['accuracy']:.1%}",
            str(s["n"]),
            *[f"{s['by_task'][t]:.1%}" if t in s["by_task"] else "-" for t in tasks],
            f"{s['truncation_rate']:.1%}",
        )
    for e, acc in metrics.get("ensembles", {}).items():
        bt = metrics.get("ensembles_by_task", {}).get(e, {})
        table.add_row(f"ensemble: {e}", f"{acc:.1%}", "", *[f"{bt[t]:.1%}" if t in bt else "-" for t in tasks], "")
    return table
