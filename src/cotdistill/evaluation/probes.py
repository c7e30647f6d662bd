"""Probes: question sets outside the training task (``eval.probes``), loaded through the question sources, on
which each student is measured before and after distillation (forgetting) and whose hidden states measure drift."""

from __future__ import annotations

from cotdistill.config import ProbeConfig
from cotdistill.errors import CotdistillError
from cotdistill.records import Question


def load_probe(i: int, pc: ProbeConfig) -> list[Question]:
    """The first ``pc.n`` questions of probe ``i`` (every split of its source); a bad source or an unknown task
    family is one line naming the probe and the problem."""
    from cotdistill.sources import load_source

    try:
        out: list[Question] = []
        for q in load_source(pc.source, {"train": pc.n, "dev": pc.n, "test": pc.n}, 0, pc.task):
            out.append(q)
            if len(out) >= pc.n:
                break
    except CotdistillError as e:
        raise CotdistillError(f"eval.probes[{i}] ({pc.name}): {e}") from None
    if not out:
        raise CotdistillError(f"eval.probes[{i}] ({pc.name}): source '{pc.source}' gave no questions")
    return out


def load_probes(probes: list[ProbeConfig]) -> dict[str, list[Question]]:
    """Every configured probe by name (names must be unique)."""
    names = [p.name for p in probes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CotdistillError(f"eval.probes: probe names must be unique (repeated: {', '.join(dup)})")
    return {p.name: load_probe(i, p) for i, p in enumerate(probes)}
