"""``compare``: yes/no questions whose answer needs 1-3 computed steps (task family ``yesno``).

"Ann has 4 boxes with 6 pencils in each. Ben has 18 pencils and gets 3 more. Does Ann have more pencils than
Ben?" Each side is computed with whole-number steps, then compared in words ("24 is more than 21"), never as
an equation. Answers are balanced between yes and no.
"""

from __future__ import annotations

import random
from typing import Annotated, Any

from pydantic import Field

from cotdistill.lab.common import ITEMS, NAMES, Invalid, Knobs, Recorder, Solution, Val, distractor, pick

TASK = "compare"
FAMILY = "yesno"


class CompareKnobs(Knobs):
    steps: list[Annotated[int, Field(ge=1, le=3)]] = Field(
        default_factory=lambda: [2, 3], min_length=1, description="allowed numbers of calculation steps (1-3)"
    )
    max_number: int = Field(20, ge=5, le=1000, description="largest number written in a question")
    max_factor: int = Field(5, ge=2, le=12, description="largest multiplier")
    distractors: int = Field(0, ge=0, le=3, description="irrelevant sentences with numbers per question")
    max_gap: int = Field(10, ge=1, description="largest difference between the compared totals (close calls)")


SIDE_SENTENCES = {
    "plain": ["{X} has {x} {items}."],
    "plus": ["{X} has {x} {items} and gets {y} more.", "{X} has {x} {items} and buys {y} more."],
    "minus": ["{X} had {x} {items} and gave away {y}.", "{X} had {x} {items} and lost {y}."],
    "pack": ["{X} has {k} {containers} with {m} {items} in each.", "{X} has {k} {containers} of {m} {items}."],
    "pack_plus": ["{X} has {k} {containers} with {m} {items} in each, plus {y} loose {items}."],
}
ASKS = {
    "more": "Does {A} have more {items} than {B}?",
    "fewer": "Does {A} have fewer {items} than {B}?",
    "together": "Do {A} and {B} have more than {N} {items} together?",
}
ONE_STEP = ["plus", "minus", "pack"]


def _side(rng: random.Random, n_steps: int, knobs: CompareKnobs) -> dict[str, Any]:
    kind = {0: "plain", 1: rng.choice(ONE_STEP), 2: "pack_plus"}[n_steps]
    mx = knobs.max_number
    s: dict[str, Any] = {"kind": kind}
    if kind == "plain":
        s["x"] = rng.randint(2, 3 * mx)
    elif kind == "plus":
        s["x"], s["y"] = rng.randint(2, 2 * mx), rng.randint(1, mx)
    elif kind == "minus":
        s["x"] = rng.randint(3, 3 * mx)
        s["y"] = rng.randint(1, min(mx, s["x"] - 1))
    elif kind == "pack":
        s["k"], s["m"] = rng.randint(2, knobs.max_factor), rng.randint(2, mx)
    else:
        s["k"], s["m"], s["y"] = rng.randint(2, knobs.max_factor), rng.randint(2, mx), rng.randint(1, mx)
    return s


def _value(s: dict[str, Any]) -> int:
    return {
        "plain": lambda: s["x"],
        "plus": lambda: s["x"] + s["y"],
        "minus": lambda: s["x"] - s["y"],
        "pack": lambda: s["k"] * s["m"],
        "pack_plus": lambda: s["k"] * s["m"] + s["y"],
    }[s["kind"]]()


def _verdict(kind: str, a: int, b: int, n: int | None) -> str:
    if kind == "more":
        return "yes" if a > b else "no"
    if kind == "fewer":
        return "yes" if a < b else "no"
    return "yes" if a + b > (n or 0) else "no"


def make(rng: random.Random, knobs: CompareKnobs) -> dict[str, Any]:
    """Draw two people, their sides and the question kind, aiming at a yes/no answer drawn 50/50."""
    n = pick(rng, knobs.steps)
    qkind = rng.choice(["more", "fewer", "together"])
    side_steps = n - 1 if qkind == "together" else n
    splits = [(i, side_steps - i) for i in range(3) if 0 <= side_steps - i <= 2]
    target = rng.choice(["yes", "no"])
    a_person, b_person = rng.sample(NAMES, 2)
    items, containers, _ = rng.choice(ITEMS)
    for _ in range(200):
        sa, sb = rng.choice(splits)
        side_a, side_b = _side(rng, sa, knobs), _side(rng, sb, knobs)
        va, vb = _value(side_a), _value(side_b)
        threshold = None
        if qkind == "together":
            threshold = max(1, va + vb + rng.choice([-1, 1]) * rng.randint(1, knobs.max_gap))
        elif va == vb or abs(va - vb) > knobs.max_gap:
            continue
        if _verdict(qkind, va, vb, threshold) == target:
            break
    else:
        raise Invalid("no draw with the target verdict")
    p: dict[str, Any] = {
        "qkind": qkind,
        "A": a_person[0],
        "B": b_person[0],
        "items": items,
        "containers": containers,
        "sides": [side_a, side_b],
        "threshold": threshold,
    }
    sents = []
    for who, side in ((p["A"], side_a), (p["B"], side_b)):
        tmpl = rng.choice(SIDE_SENTENCES[side["kind"]])
        sents.append(tmpl.format(X=who, items=items, containers=containers, **{k: side.get(k) for k in "xykm"}))
    p["facts"] = list(sents)
    for _ in range(knobs.distractors):
        sents.insert(rng.randint(0, len(sents)), distractor(rng, p["A"], items, knobs.max_number))
    ask = ASKS[qkind].format(A=p["A"], B=p["B"], items=items, N=threshold)
    p["question"] = " ".join(sents) + " " + ask
    p["gold"] = target
    return p


def _side_steps(rec: Recorder, who: str, s: dict[str, Any], items: str, containers: str, var: str) -> Val:
    kind = s["kind"]
    if kind == "plain":
        return Val(s["x"], var)
    if kind == "plus":
        return rec.calc(s["x"], "+", s["y"], f"{items} {who} has", var)
    if kind == "minus":
        return rec.calc(s["x"], "-", s["y"], f"{items} {who} has left", var)
    if kind == "pack":
        return rec.calc(s["k"], "*", s["m"], f"{items} in {who}'s {containers}", var)
    packed = rec.calc(s["k"], "*", s["m"], f"{items} in {who}'s {containers}", f"{var}_packed")
    return rec.calc(packed, "+", s["y"], f"{items} {who} has in total", var)


def solve(p: dict[str, Any], slip: tuple[int, int] | None = None) -> Solution:
    """Compute each side, then compare (in words); with ``slip`` one step is wrong and the rest follow it."""
    rec = Recorder(slip)
    items, cont = p["items"], p["containers"]
    a = _side_steps(rec, p["A"], p["sides"][0], items, cont, p["A"].lower())
    b = _side_steps(rec, p["B"], p["sides"][1], items, cont, p["B"].lower())
    qkind, n = p["qkind"], p["threshold"]

    def rel(x: int, y: int) -> str:
        return "more than" if x > y else "less than" if x < y else "equal to"

    verdict = _verdict(qkind, a.value, b.value, n)
    if qkind == "together":
        total = rec.calc(a, "+", b, f"{items} {p['A']} and {p['B']} have together", "together")
        verdict = "yes" if total.value > n else "no"
        has = "have" if verdict == "yes" else "do not have"
        conclusion = f"{total.value} is {rel(total.value, n)} {n}, so together they {has} more than {n} {items}."
        expr = f"together > {n}"
    else:
        word = "more" if qkind == "more" else "fewer"
        has = "has" if verdict == "yes" else "does not have"
        conclusion = f"{a.value} is {rel(a.value, b.value)} {b.value}, so {p['A']} {has} {word} {items} than {p['B']}."
        expr = f"{a.var} {'>' if qkind == 'more' else '<'} {b.var}"
    inputs = {v.var: v.value for v in (a, b) if v.step is None and v.var}
    return Solution(rec.steps, verdict, verdict, conclusion, "True" if verdict == "yes" else "False", expr, inputs)


def goal(p: dict[str, Any]) -> str:
    if p["qkind"] == "together":
        return f"whether {p['A']} and {p['B']} have more than {p['threshold']} {p['items']} together"
    word = "more" if p["qkind"] == "more" else "fewer"
    return f"whether {p['A']} has {word} {p['items']} than {p['B']}"


APPROACHES = [
    "work out each person's total and compare the two numbers",
    "estimate both sides roughly",
    "compare the sides piece by piece without totals",
]
