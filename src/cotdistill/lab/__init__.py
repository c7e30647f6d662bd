"""The built-in reasoning lab: seeded question generators with exact step-by-step solutions, and synthetic
teachers that write reasoning paths for them in six styles with controlled faults. Needs no network or model.

Tasks: ``arith`` (word problems, family ``math``), ``date`` (date arithmetic, multiple choice, family ``choice``),
``compare`` (yes/no after computed steps, family ``yesno``). Every question carries its solution in
``metadata["solution"]`` (steps ``{"a", "op", "b", "result", "text", ...}``) and its generator parameters in
``metadata["lab"]`` (which the synthetic teachers re-derive from).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from cotdistill.errors import CotdistillError
from cotdistill.lab import arith, compare, date
from cotdistill.lab.common import Invalid, Solution, parse_knobs, rng_for
from cotdistill.records import Question

TASKS: dict[str, ModuleType] = {"arith": arith, "date": date, "compare": compare}
KNOBS = {"arith": arith.ArithKnobs, "date": date.DateKnobs, "compare": compare.CompareKnobs}
SPLITS = ("train", "dev", "test")


def task_module(name: str) -> ModuleType:
    """The generator module of lab task ``name``; a clear error listing the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise CotdistillError(f"unknown lab task '{name}' (known: {', '.join(TASKS)})") from None


def generate_questions(
    tasks: list[str], counts: dict[str, int], seed: int = 0, options: dict[str, Any] | None = None
) -> Iterator[Question]:
    """``counts[split]`` questions per split, spread evenly over ``tasks``, deterministic by ``seed``.

    Splits are generated in the order train, dev, test from independent seeded streams, and a question text
    already produced (in any split) is skipped, so splits never share a question.
    """
    options = options or {}
    unknown = sorted(set(options) - set(TASKS))
    if unknown:
        raise CotdistillError(
            f"questions.options: unknown lab task(s) {', '.join(unknown)} (known: {', '.join(TASKS)})"
        )
    mods = [task_module(t) for t in tasks]
    knobs = {t: parse_knobs(KNOBS[t], options.get(t), t) for t in tasks}
    seen: set[str] = set()
    for split in sorted(counts, key=lambda s: SPLITS.index(s) if s in SPLITS else len(SPLITS)):
        count = counts[split]
        if count <= 0:
            continue
        per = [count // len(tasks) + (1 if i < count % len(tasks) else 0) for i in range(len(tasks))]
        for name, mod, k in zip(tasks, mods, per, strict=True):
            rng = rng_for("lab", seed, name, split)
            made, tries = 0, 0
            while made < k:
                tries += 1
                if tries > 200 * k + 1000:
                    raise CotdistillError(
                        f"lab:{name}: could not draw {k} distinct {split} questions with these knobs "
                        f"(got {made}); widen questions.options.{name} (more steps or a larger max_number)"
                    )
                try:
                    p = mod.make(rng, knobs[name])
                    sol = mod.solve(p)
                except Invalid:
                    continue
                if p["question"] in seen:
                    continue
                seen.add(p["question"])
                yield _question(name, mod, split, made, p, sol)
                made += 1


def _question(name: str, mod: ModuleType, split: str, i: int, p: dict[str, Any], sol: Solution) -> Question:
    params = {k: v for k, v in p.items() if k not in ("question", "facts", "gold")}
    return Question(
        id=f"lab-{name}-{split}-{i}",
        task=mod.FAMILY,
        question=p["question"],
        choices=p.get("choices"),
        gold=sol.answer or "",
        source=f"lab:{name}",
        split=split,  # type: ignore[arg-type]
        metadata={
            "lab": {"task": name, "params": params},
            "solution": sol.steps,
            "facts": p["facts"],
            "difficulty": {"steps": len(sol.steps)},
        },
    )


def lab_task_of(q: Question) -> tuple[str, dict[str, Any]]:
    """(task name, generator params) of a lab question; an error for questions not made by the lab."""
    lab = q.metadata.get("lab") if isinstance(q.metadata, dict) else None
    if not isinstance(lab, dict) or lab.get("task") not in TASKS or not isinstance(lab.get("params"), dict):
        raise CotdistillError(
            f"question '{q.id}' is not a lab question (no metadata.lab): synthetic teachers only write paths for "
            "questions from the lab: source"
        )
    params = dict(lab["params"])
    params["facts"] = q.metadata.get("facts", [])
    params["question"] = q.question
    return lab["task"], params


def solve_question(q: Question, slip: tuple[int, int] | None = None) -> Solution:
    """Re-derive a lab question's solution (optionally with one slipped step)."""
    name, params = lab_task_of(q)
    return TASKS[name].solve(params, slip)


def write_lab_paths(*args: Any, **kwargs: Any) -> dict[str, int]:
    """Synthetic teachers over ``RUN/questions.jsonl`` into ``RUN/paths.jsonl`` (:mod:`cotdistill.lab.runner`)."""
    from cotdistill.lab.runner import write_lab_paths as _write

    return _write(*args, **kwargs)


def register() -> None:
    """The lab as a plugin: the ``synthetic`` teacher backend, the ``lab:`` question source and the ``synthetic``
    judge, through the registries any third-party plugin uses (called by :func:`cotdistill.plugins.load_plugins`)."""
    from cotdistill.quality.judges import register_judge
    from cotdistill.sources import register_source
    from cotdistill.teachers import register_backend

    def backend(cfg: Any, seed: int) -> Any:
        from cotdistill.lab.synthetic import SyntheticBackend

        return SyntheticBackend(cfg, seed)

    def judge(cfg: Any, run: Any) -> tuple[Any, None]:
        from cotdistill.lab.judge import SyntheticJudge

        return SyntheticJudge(), None

    def source(req: Any) -> Any:
        from cotdistill.lab.source import lab_source

        return lab_source(req)

    register_backend("synthetic", backend)
    register_source("lab")(source)
    register_judge("synthetic", judge)


__all__ = ["TASKS", "generate_questions", "lab_task_of", "register", "solve_question", "write_lab_paths"]
