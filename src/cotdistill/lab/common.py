"""Shared machinery of the lab tasks: seeded randomness, recorded calculation steps, solutions, knob parsing.

A lab task is a pair of functions: ``make(rng, knobs)`` draws the parameters of one question and
``solve(params, slip)`` derives its solution as a list of calculation steps. ``slip`` replaces one step's
result by a wrong value and lets every later step use it: that is how a synthetic teacher's wrong-answer fault
propagates honestly to a wrong final answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cotdistill.errors import ConfigError

OPS = ("+", "-", "*", "/")


class Invalid(Exception):
    """A derivation that cannot happen (negative count, non-integral division): the caller draws again."""


def rng_for(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from ``parts`` (string seeding is SHA-512 based: stable across runs/machines)."""
    return random.Random("|".join(str(p) for p in parts))


def apply_op(a: int, op: str, b: int) -> int:
    """``a op b`` over non-negative integers; :class:`Invalid` when the result would leave them."""
    if op == "+":
        return a + b
    if op == "-":
        if b > a:
            raise Invalid(f"{a} - {b} < 0")
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0 or a % b:
            raise Invalid(f"{a} / {b} is not integral")
        return a // b
    raise ValueError(f"unknown op {op!r}")


def inverse_step(step: dict[str, Any]) -> tuple[int, str, int, int]:
    """The backward check of ``a op b = r`` as ``(r, inv_op, b, a)``: ``r - b = a``, ``r / b = a`` ..."""
    inv = {"+": "-", "-": "+", "*": "/", "/": "*"}[step["op"]]
    return step["result"], inv, step["b"], step["a"]


@dataclass
class Val:
    """A number in a derivation, with the program variable that holds it (None for a literal)."""

    value: int
    var: str | None = None
    step: int | None = None


@dataclass
class Recorder:
    """Records the calculation steps of a derivation; applies an optional slip ``(step index, wrong result)``."""

    slip: tuple[int, int] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def calc(self, a: Val | int, op: str, b: Val | int, text: str, var: str) -> Val:
        """Record ``a op b`` (described by the noun phrase ``text``) and return its (possibly slipped) value."""
        a = a if isinstance(a, Val) else Val(a)
        b = b if isinstance(b, Val) else Val(b)
        if a.value < 0 or b.value < 0:
            raise Invalid("negative operand")
        true = apply_op(a.value, op, b.value)
        i = len(self.steps)
        result = self.slip[1] if self.slip and self.slip[0] == i else true
        if result < 0:
            raise Invalid("negative result")
        step: dict[str, Any] = {
            "a": a.value,
            "op": op,
            "b": b.value,
            "result": result,
            "text": text,
            "var": var,
            "a_ref": a.step,
            "b_ref": b.step,
            "a_var": a.var,
            "b_var": b.var,
        }
        if result != true:
            step["true_result"] = true
        self.steps.append(step)
        return Val(result, var, i)


@dataclass
class Solution:
    """A derived solution: steps, the final value, the answer in the family's canonical form, prose around it.

    ``answer`` is None when a (slipped) derivation ends somewhere the question has no answer for (a date that
    is not among the options).
    """

    steps: list[dict[str, Any]]
    value: Any
    answer: str | None
    conclusion: str  # e.g. "Tom has 13 apples now." (never an answer marker)
    program_result: str  # what the program style's print() shows
    program_print: str  # the print() expression
    inputs: dict[str, int] = field(default_factory=dict)  # program variables given by the question, not computed


def parse_knobs(model: type[BaseModel], raw: Any, task: str) -> BaseModel:
    """Validate one task's knobs from ``questions.options.<task>``; unknown or bad knobs are config errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"questions.options.{task}: expected a mapping of knobs, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = "unknown knob" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            parts.append(f"questions.options.{task}.{loc}: {msg}")
        raise ConfigError("; ".join(parts)) from None


class Knobs(BaseModel):
    """Base of a task's difficulty knobs: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


NAMES = [
    ("Tom", "he", "his", "him"),
    ("Ann", "she", "her", "her"),
    ("Ben", "he", "his", "him"),
    ("Mia", "she", "her", "her"),
    ("Sam", "he", "his", "him"),
    ("Lily", "she", "her", "her"),
    ("Max", "he", "his", "him"),
    ("Emma", "she", "her", "her"),
    ("Leo", "he", "his", "him"),
    ("Zoe", "she", "her", "her"),
    ("Omar", "he", "his", "him"),
    ("Nina", "she", "her", "her"),
]

# (plural item, container plural, container singular)
ITEMS = [
    ("apples", "baskets", "basket"),
    ("marbles", "bags", "bag"),
    ("stickers", "albums", "album"),
    ("cookies", "jars", "jar"),
    ("books", "shelves", "shelf"),
    ("coins", "purses", "purse"),
    ("pencils", "boxes", "box"),
    ("cards", "packs", "pack"),
    ("shells", "buckets", "bucket"),
    ("stamps", "folders", "folder"),
]

DISTRACTORS = [
    "{other} is {n} years old.",
    "{other} has {n} {other_items}.",
    "The shop is {n} minutes away.",
    "It rained on {n} days last month.",
    "{other} reads {n} pages a day.",
]


def distractor(rng: random.Random, name: str, items: str, max_number: int) -> str:
    """An irrelevant sentence with a number in it (a difficulty knob: the solver must ignore it)."""
    other = rng.choice([n for n in NAMES if n[0] != name])[0]
    other_items = rng.choice([it for it in ITEMS if it[0] != items])[0]
    return rng.choice(DISTRACTORS).format(other=other, n=rng.randint(2, max_number), other_items=other_items)


def pick(rng: random.Random, allowed: list[int]) -> int:
    """One value of a knob given as a list of allowed values."""
    return rng.choice(sorted(set(allowed)))
