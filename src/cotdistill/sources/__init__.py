"""Question sources by spec: ``rg:NAME[,NAME]`` (reasoning-gym), ``file:PATH`` (or a bare path), ``lab:TASKS``,
``mcc-kd:PATH`` (the questions of an MCC-KD file),
``hf:NAME[:CONFIG]`` (Hugging Face datasets through built-in recipes).

A source yields :class:`~cotdistill.records.Question` records for the requested splits, deterministically by seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotdistill.errors import CotdistillError
from cotdistill.records import Question


@dataclass(frozen=True)
class SourceRequest:
    """What a source is asked for: the spec after ``prefix:``, the count per split, the seed, the task family
    override (``questions.task``), the field mapping (``questions.fields``) and ``questions.options``."""

    rest: str
    counts: dict[str, int]
    seed: int = 0
    task: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


SourceFn = Callable[[SourceRequest], Iterator[Question]]
_SOURCES: dict[str, SourceFn] = {}


def register_source(prefix: str) -> Callable[[SourceFn], SourceFn]:
    """Register a question source under ``prefix:`` (the built-ins, the lab and other plugins)."""

    def deco(fn: SourceFn) -> SourceFn:
        _SOURCES[prefix] = fn
        return fn

    return deco


def load_source(
    spec: str,
    counts: dict[str, int],
    seed: int = 0,
    task: str | None = None,
    fields: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
) -> Iterator[Question]:
    """Questions from ``spec`` with ``counts`` per split (``{"train": 300, "dev": 50, "test": 100}``)."""
    from cotdistill.plugins import load_plugins
    from cotdistill.sources import files, hf, importers, reasoning_gym  # noqa: F401  (registration)

    load_plugins()
    prefix, _, rest = spec.partition(":")
    if prefix not in _SOURCES:
        if Path(spec).suffix.lower() in files.SUFFIXES:
            prefix, rest = "file", spec
        else:
            known = ", ".join(f"{p}:" for p in sorted(_SOURCES))
            raise CotdistillError(f"unknown question source '{spec}' (known: {known} or a file path)")
    return _SOURCES[prefix](SourceRequest(rest, counts, seed, task, fields or {}, options or {}))
