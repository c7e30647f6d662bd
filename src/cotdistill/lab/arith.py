"""``arith``: word problems of 1-4 calculation steps over small whole numbers (task family ``math``).

A story starts with a count of items and changes it event by event (more, fewer, k times as many, packs of m,
shared equally). Every step is integral and non-negative, so ``a op b = c`` statements are exact.
"""

from __future__ import annotations

import random
from typing import Annotated, Any

from pydantic import Field

from cotdistill.lab.common import ITEMS, NAMES, Invalid, Knobs, Recorder, Solution, Val, distractor, pick

TASK = "arith"
FAMILY = "math"


class ArithKnobs(Knobs):
    steps: list[Annotated[int, Field(ge=1, le=4)]] = Field(
        default_factory=lambda: [2, 3], min_length=1, description="allowed numbers of calculation steps (1-4)"
    )
    max_number: int = Field(20, ge=5, le=1000, description="largest number written in a question")
    max_factor: int = Field(5, ge=2, le=12, description="largest multiplier / divisor")
    max_result: int = Field(200, ge=20, description="largest intermediate value")
    distractors: int = Field(0, ge=0, le=3, description="irrelevant sentences with numbers per question")


INTROS = [
    "{Name} has {s} {items}.",
    "{Name} starts the day with {s} {items}.",
    "There are {s} {items} in {Name}'s {container}.",
]
ASKS = [
    "How many {items} does {Name} have now?",
    "How many {items} does {Name} have in the end?",
]
ASK_DIV = ["How many {items} are in each {container}?", "How many {items} go into each {container}?"]
SENTENCES = {
    "add": ["{He} buys {b} more {items}.", "{He} finds {b} more {items}.", "A friend gives {him} {b} more {items}."],
    "sub": ["{He} gives {b} {items} to a friend.", "{He} loses {b} {items}.", "{He} uses {b} of the {items}."],
    "mul2": ["The number of {items} {he} has doubles."],
    "mul3": ["The number of {items} {he} has triples."],
    "mul": ["{He} ends up with {k} times as many {items} as before."],
    "pack": ["{He} buys {k} packs with {m} {items} in each.", "{He} gets {k} packs of {m} {items} each."],
    "div": [
        "{He} puts all the {items} equally into {k} {containers}.",
        "{He} shares the {items} equally among {k} {containers}.",
    ],
}


def _fmt(template: str, p: dict[str, Any], **kw: Any) -> str:
    name, he, his, him = p["person"]
    s = template.format(
        Name=name, He=he.capitalize(), he=he, his=his, him=him, items=p["items"], containers=p["containers"],
        container=p["container"], s=p["start"], **kw,
    )  # fmt: skip
    return s


def make(rng: random.Random, knobs: ArithKnobs) -> dict[str, Any]:
    """Draw one problem's parameters (the question text included); :class:`Invalid` when a draw fails."""
    person = rng.choice(NAMES)
    items, containers, container = rng.choice(ITEMS)
    n_steps = pick(rng, knobs.steps)
    p: dict[str, Any] = {
        "person": list(person),
        "items": items,
        "containers": containers,
        "container": container,
        "start": rng.randint(2, knobs.max_number),
    }
    cur, done, events = p["start"], 0, []
    while done < n_steps:
        left = n_steps - done
        kinds = ["add", "sub", "mul"] + (["pack"] if left >= 2 else []) + (["div"] if left == 1 else [])
        kind = rng.choice(kinds)
        ev: dict[str, Any] = {"kind": kind}
        if kind == "add":
            ev["b"] = rng.randint(2, knobs.max_number)
            cur += ev["b"]
        elif kind == "sub":
            if cur < 3:
                continue
            ev["b"] = rng.randint(2, min(cur - 1, knobs.max_number))
            cur -= ev["b"]
        elif kind == "mul":
            ev["k"] = rng.randint(2, min(knobs.max_factor, 3 if cur > 30 else knobs.max_factor))
            cur *= ev["k"]
        elif kind == "pack":
            ev["k"] = rng.randint(2, knobs.max_factor)
            ev["m"] = rng.randint(2, knobs.max_number)
            cur += ev["k"] * ev["m"]
        else:
            divisors = [k for k in range(2, knobs.max_factor + 1) if cur % k == 0 and cur // k >= 1]
            if not divisors:
                continue
            ev["k"] = rng.choice(divisors)
            cur //= ev["k"]
        if cur > knobs.max_result:
            raise Invalid("too large")
        done += 2 if kind == "pack" else 1
        key = f"mul{ev['k']}" if kind == "mul" and ev["k"] in (2, 3) and rng.random() < 0.5 else kind
        ev["sentence"] = _fmt(rng.choice(SENTENCES[key]), p, b=ev.get("b"), k=ev.get("k"), m=ev.get("m"))
        events.append(ev)
    p["events"] = events
    intro = _fmt(rng.choice(INTROS), p)
    story = [intro] + [e["sentence"] for e in events]
    p["facts"] = [_fmt("{Name} starts with {s} {items}.", p)] + [e["sentence"] for e in events]
    for _ in range(knobs.distractors):
        story.insert(rng.randint(1, len(story)), distractor(rng, person[0], items, knobs.max_number))
    ask = rng.choice(ASK_DIV if events[-1]["kind"] == "div" else ASKS)
    p["question"] = " ".join(story) + " " + _fmt(ask, p)
    return p


def solve(p: dict[str, Any], slip: tuple[int, int] | None = None) -> Solution:
    """The steps of the story in order; with ``slip``, one step's result is wrong and later steps use it."""
    rec = Recorder(slip)
    items = p["items"]
    cur = Val(p["start"], items)
    for ev in p["events"]:
        kind = ev["kind"]
        if kind == "add":
            cur = rec.calc(cur, "+", ev["b"], f"{items} after getting {ev['b']} more", f"after_more_{len(rec.steps)}")
        elif kind == "sub":
            cur = rec.calc(cur, "-", ev["b"], f"{items} left after losing {ev['b']}", f"left_{len(rec.steps)}")
        elif kind == "mul":
            cur = rec.calc(cur, "*", ev["k"], f"{items} after growing {ev['k']} times", f"grown_{len(rec.steps)}")
        elif kind == "pack":
            packed = rec.calc(ev["k"], "*", ev["m"], f"{items} in the {ev['k']} packs", f"in_packs_{len(rec.steps)}")
            cur = rec.calc(cur, "+", packed, f"{items} in total", f"total_{len(rec.steps)}")
        elif kind == "div":
            cur = rec.calc(cur, "/", ev["k"], f"{items} in each {p['container']}", f"each_{len(rec.steps)}")
        else:  # pragma: no cover - params come from make()
            raise Invalid(f"unknown event {kind}")
    name = p["person"][0]
    if p["events"][-1]["kind"] == "div":
        conclusion = f"Each {p['container']} holds {cur.value} {items}."
    else:
        conclusion = f"{name} has {cur.value} {items} now."
    return Solution(rec.steps, cur.value, str(cur.value), conclusion, str(cur.value), cur.var or items)


def goal(p: dict[str, Any]) -> str:
    """What the question asks, as a clause (verbose teachers restate it)."""
    if p["events"][-1]["kind"] == "div":
        return f"how many {p['items']} go into each {p['container']}"
    return f"how many {p['items']} {p['person'][0]} has at the end"


APPROACHES = [
    "follow the story one event at a time",
    "write a single expression for the whole story",
    "guess a number and adjust it until it fits",
]
