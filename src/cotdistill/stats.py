"""Statistics over a run directory: counts per task/teacher/style, answer correctness, path lengths."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cotdistill.records import load_questions, read_paths
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family


class _Agg:
    __slots__ = ("n", "ok", "chars", "min", "max")

    def __init__(self) -> None:
        self.n = self.ok = self.chars = 0
        self.min, self.max = 10**12, 0

    def add(self, ok: bool, length: int) -> None:
        self.n += 1
        self.ok += int(ok)
        self.chars += length
        self.min, self.max = min(self.min, length), max(self.max, length)

    def as_dict(self) -> dict[str, Any]:
        return {
            "paths": self.n,
            "answer_ok": self.ok,
            "answer_ok_rate": round(self.ok / self.n, 4) if self.n else 0.0,
            "mean_chars": round(self.chars / self.n, 1) if self.n else 0.0,
            "min_chars": self.min if self.n else 0,
            "max_chars": self.max,
        }


def inspect_run(root: str) -> dict[str, Any]:
    """Stream the run's paths once and aggregate; answer correctness is recomputed against gold."""
    run = RunDir.at(root)
    questions = load_questions(run.questions)
    per_task_q: dict[str, int] = defaultdict(int)
    for q in questions.values():
        per_task_q[q.task] += 1
    total = _Agg()
    groups: dict[str, dict[str, _Agg]] = {"task": {}, "teacher": {}, "style": {}, "teacher_style": {}}
    unknown = 0
    if run.paths.exists():
        for p in read_paths(run.paths, allow_empty=True):
            q = questions.get(p.question_id)
            if q is None:
                unknown += 1
                continue
            ok = get_family(q.task).equivalent(p.answer, q.gold)
            n = len(p.text)
            total.add(ok, n)
            for name, key in (
                ("task", q.task),
                ("teacher", p.teacher),
                ("style", p.style),
                ("teacher_style", f"{p.teacher}/{p.style}"),
            ):
                groups[name].setdefault(key, _Agg()).add(ok, n)
    return {
        "run": str(run.root),
        "questions": len(questions),
        "questions_per_task": dict(sorted(per_task_q.items())),
        "paths": total.n,
        "paths_with_unknown_question": unknown,
        "total": total.as_dict(),
        **{f"by_{g}": {k: v.as_dict() for k, v in sorted(d.items())} for g, d in groups.items()},
    }
