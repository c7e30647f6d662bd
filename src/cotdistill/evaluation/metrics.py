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


def summarize(recs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy overall and per task family, and the shares with no extractable answer and cut off, of output
    records (one model on one question set)."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    for r in recs:
        by_task[r["task"]].append(r["correct"])
    return {
        "accuracy": _acc([r["correct"] for r in recs]),
        "n": len(recs),
        "by_task": {t: _acc(v) for t, v in sorted(by_task.items())},
        "no_answer_rate": _acc([r["answer"] is None for r in recs]),
        "truncation_rate": _acc([r["truncated"] for r in recs]),
    }


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
        students[name] = summarize(recs)
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


def before_after(trained: dict[str, Any], base: dict[str, Any], probes: list[str]) -> dict[str, Any]:
    """metrics.json's comparison of each student with its starting point (``ModelEval`` by name on both sides):
    ``base`` rows and ``delta`` (distilled minus base accuracy) on the split, per probe ``before`` / ``after`` /
    ``drop`` (forgetting), and ``drift`` (linear CKA and mean cosine of the two models' pooled hidden states)."""
    from cotdistill.evaluation.drift import linear_cka, mean_cosine

    out: dict[str, Any] = {"base": {}, "delta": {}, "probes": {}, "drift": {}}
    for name, b in base.items():
        out["base"][name] = summarize(b.outputs)
        if name in trained:
            after = summarize(trained[name].outputs)["accuracy"]
            out["delta"][name] = round(after - out["base"][name]["accuracy"], 6)
    for p in probes:
        rows: dict[str, Any] = {}
        for name in sorted(set(trained) | set(base), key=list({**trained, **base}).index):
            row = {}
            if name in base:
                row["before"] = summarize(base[name].probes[p])
            if name in trained:
                row["after"] = summarize(trained[name].probes[p])
            if "before" in row and "after" in row:
                row["drop"] = round(row["before"]["accuracy"] - row["after"]["accuracy"], 6)
            rows[name] = row
        out["probes"][p] = rows
    for name, b in base.items():
        t = trained.get(name)
        if t is not None and b.states is not None and t.states is not None and len(b.states) >= 2:
            out["drift"][name] = {"cka": round(linear_cka(b.states, t.states), 6), "n": len(b.states),
                                  "cosine": mean_cosine(b.states, t.states)}  # fmt: skip
    return out


def metrics_table(metrics: dict[str, Any]) -> Any:
    """A rich table of metrics.json: per student base -> distilled accuracy, per task family, no-answer and
    truncation rates; then the ensembles."""
    from rich.table import Table

    tasks = sorted({t for s in metrics["students"].values() for t in s["by_task"]})
    base = metrics.get("base", {})
    table = Table(title=f"eval on split '{metrics['split']}'")
    for col in ("model", "base", "distilled", "n", *tasks, "no answer", "truncated"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in metrics["students"].items():
        b = base.get(name)
        table.add_row(
            name,
            f"{b['accuracy']:.1%}" if b else "-",
            f"{s['accuracy']:.1%}",
            str(s["n"]),
            *[f"{s['by_task'][t]:.1%}" if t in s["by_task"] else "-" for t in tasks],
            f"{s.get('no_answer_rate', 0):.1%}",
            f"{s['truncation_rate']:.1%}",
        )
    for e, acc in metrics.get("ensembles", {}).items():
        bt = metrics.get("ensembles_by_task", {}).get(e, {})
        row = [f"ensemble: {e}", "", f"{acc:.1%}", "", *[f"{bt[t]:.1%}" if t in bt else "-" for t in tasks], "", ""]
        table.add_row(*row)
    return table
