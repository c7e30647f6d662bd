"""Task families by name: each knows its core prompt, how to extract an answer and how to compare it."""

from __future__ import annotations

from cotdistill.errors import CotdistillError
from cotdistill.tasks.base import TaskFamily
from cotdistill.tasks.choice import ChoiceFamily
from cotdistill.tasks.label import LabelFamily
from cotdistill.tasks.math import MathFamily
from cotdistill.tasks.yesno import YesNoFamily

FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (MathFamily(), ChoiceFamily(), YesNoFamily(), LabelFamily())}


def get_family(name: str) -> TaskFamily:
    """The task family called ``name``; a clear error listing the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise CotdistillError(f"unknown task family '{name}' (known: {', '.join(sorted(FAMILIES))})") from None


__all__ = ["FAMILIES", "TaskFamily", "get_family"]
