"""Synthetic teachers: deterministic writers of reasoning paths for lab questions, in the six styles, with faults.

A teacher's ``profile`` (``TeacherConfig.profile``) sets its verbosity and, per style, the rates of four
faults; at most one fault is injected per path and every injected fault is recorded in the completion's
``metadata["faults"]`` (for measuring filters; filters never read it):

- ``wrong_answer``: one step's result is miscalculated (a false ``a op b = c``) and every later step uses it,
  so the final answer is wrong;
- ``spurious``: one intermediate ``a op b = c`` statement is false while every later step, and the final
  answer, use the right value;
- ``truncation``: the path stops before its final answer (no answer can be extracted);
- ``format_drift``: the final answer is stated without the family's answer marker ("So we get 42.",
  "So I pick (B).", "Final verdict: yes."). Strict extraction (the default of ``TaskFamily.extract``) does
  not find it; lenient extraction does (last number / "(X)" / last yes-no word).

Fault-free paths state each calculation step as a plain true ``a op b = c`` (the program style as a comment
beside the code) and end with ``TaskFamily.format_answer``; they contain no answer marker anywhere else.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cotdistill.config import STYLES, TeacherConfig
from cotdistill.errors import ConfigError, CotdistillError
from cotdistill.lab import TASKS, lab_task_of
from cotdistill.lab.common import Invalid, Solution, inverse_step, rng_for
from cotdistill.records import Question
from cotdistill.tasks import TaskFamily, get_family
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend

FAULTS = ("wrong_answer", "spurious", "truncation", "format_drift")


class FaultRates(BaseModel):
    """Per-path probabilities of each fault (mutually exclusive: their sum is at most 1)."""

    model_config = ConfigDict(extra="forbid")
    wrong_answer: float = Field(0.0, ge=0, le=1, description="a miscalculated step that makes the answer wrong")
    spurious: float = Field(0.0, ge=0, le=1, description="a false intermediate step, right final answer")
    truncation: float = Field(0.0, ge=0, le=1, description="the path stops before the final answer")
    format_drift: float = Field(0.0, ge=0, le=1, description="the answer is stated without the answer marker")

    @model_validator(mode="after")
    def _at_most_one(self) -> FaultRates:
        total = sum(getattr(self, f) for f in FAULTS)
        if total > 1 + 1e-9:
            raise ValueError(f"fault rates sum to {total:.3f} > 1 (at most one fault is injected per path)")
        return self


class Profile(BaseModel):
    """A synthetic teacher's character: verbosity and fault rates (default, and per-style overrides)."""

    model_config = ConfigDict(extra="forbid")
    verbosity: float = Field(0.3, ge=0, le=1, description="0 terse .. 1 chatty (restatements, fillers, recaps)")
    faults: FaultRates = Field(default_factory=FaultRates, description="fault rates for every style")
    styles: dict[str, dict[str, float]] = Field(default_factory=dict, description="per-style fault-rate overrides")

    @model_validator(mode="after")
    def _known_styles(self) -> Profile:
        for style, rates in self.styles.items():
            if style not in STYLES:
                raise ValueError(f"styles.{style}: unknown style (known: {', '.join(STYLES)})")
            FaultRates.model_validate({**self.faults.model_dump(), **rates})
        return self

    def rates(self, style: str) -> FaultRates:
        """The fault rates that apply to ``style``."""
        return FaultRates.model_validate({**self.faults.model_dump(), **self.styles.get(style, {})})

    def expected_correct(self, style: str) -> float:
        """Share of paths whose strictly extracted answer equals gold: all but wrong, truncated and drifted."""
        r = self.rates(style)
        return 1.0 - r.wrong_answer - r.truncation - r.format_drift


def parse_profile(cfg: TeacherConfig) -> Profile:
    """The teacher's validated profile; a config error naming the teacher and field otherwise."""
    try:
        return Profile.model_validate(cfg.profile or {})
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            parts.append(f"{loc}: {msg.removeprefix('Value error, ')}")
        raise ConfigError(f"teacher '{cfg.name}': invalid synthetic profile: " + "; ".join(parts)) from None


# ---------------------------------------------------------------- phrasing data

COT_INTROS = ["Let's think step by step.", "Let's work through this step by step.", "Step by step:"]
CONNECTORS = ["First", "Next", "Then", "After that", "Then"]
TOT_INTROS = ["Let me consider a few ways to solve this.", "Possible approaches:", "There are several ways in."]
TOT_PICK = [
    "Approach {k} is the most promising, so I pursue it.",
    "The most direct is approach {k}; following it:",
    "I will go with approach {k}.",
]
PROGRAM_INTROS = ["Let me solve this with a short program.", "Here is Python code that computes it.", "As code:"]
PROGRAM_RUN = ["Running it prints {r}.", "The program prints {r}.", "The printed result is {r}."]
BACKWARD_FWD = ["First, a forward pass to get a candidate.", "Working forward first:", "Let me reason forward first."]
BACKWARD_CHECK = ["Now check it by working backward:", "Verify backward from this result:", "Checking in reverse:"]
BACKWARD_OK = [
    "This gets back to the numbers in the question, so the check passes.",
    "Every number matches the question, so the result holds.",
    "The reverse pass agrees.",
]
FACTS_INTROS = ["Relevant facts:", "First, the facts we need:", "Known facts:"]
FACTS_THEN = ["Reasoning from these facts:", "Using them:", "Now reason from the facts:"]
RESTATE = ["We need to find {goal}.", "The question asks for {goal}.", "Goal: find {goal}."]
FILLERS = ["That checks out.", "Keep this number in mind.", "So far so good.", "Let me double-check that."]
RECAP = ["To recap: {calcs}.", "In short: {calcs}.", "Summary of the steps: {calcs}."]
DRIFT = {
    "math": ["So we get {v}.", "Final result: {v}.", "That gives {v} in total."],
    "choice": ["So I pick ({v}).", "Final choice: ({v}).", "({v}) is the one."],
    "yesno": ["So: {v}.", "Final verdict: {v}.", "I would say {v}."],
}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


@dataclass
class _Ctx:
    """Everything one path is written from."""

    rng: random.Random
    mod: ModuleType
    params: dict[str, Any]
    sol: Solution
    shown: list[int]  # the result each step states (differs from the derivation at a spurious step)
    verbosity: float
    mul: str
    div: str

    def sym(self, op: str) -> str:
        return {"*": self.mul, "/": self.div}.get(op, op)

    def calc(self, i: int) -> str:
        s = self.sol.steps[i]
        return f"{s['a']} {self.sym(s['op'])} {s['b']} = {self.shown[i]}"

    def true_calc(self, i: int) -> str:
        s = self.sol.steps[i]
        return f"{s['a']} {self.sym(s['op'])} {s['b']} = {s['result']}"

    def step_lines(self, fmt: str) -> list[str]:
        """One line per step from ``fmt`` (fields: n, text, Text, calc, conn), with verbose fillers."""
        out = []
        for i, s in enumerate(self.sol.steps):
            conn = "Finally" if i == len(self.sol.steps) - 1 and i > 0 else CONNECTORS[min(i, len(CONNECTORS) - 1)]
            line = fmt.format(n=i + 1, text=s["text"], Text=_cap(s["text"]), calc=self.calc(i), conn=conn)
            if self.rng.random() < self.verbosity / 2:
                line += " " + self.rng.choice(FILLERS)
            out.append(line)
        return out

    def recap(self) -> list[str]:
        if self.sol.steps and self.rng.random() < self.verbosity:
            calcs = ", ".join(self.true_calc(i) for i in range(len(self.sol.steps)))
            return [self.rng.choice(RECAP).format(calcs=calcs)]
        return []


def _vanilla(c: _Ctx) -> list[str]:
    v = c.rng.randrange(3)
    if not c.sol.steps:
        return [c.sol.conclusion]
    if v == 0:
        return [" ".join(c.step_lines("{Text}: {calc}.")) + " " + c.sol.conclusion]
    if v == 1:
        calcs = [c.calc(i) for i in range(len(c.sol.steps))]
        return ["We compute " + ", then ".join(calcs) + ". " + c.sol.conclusion]
    return c.step_lines("{calc} ({text}).") + [c.sol.conclusion]


def _cot(c: _Ctx) -> list[str]:
    v = c.rng.randrange(3)
    fmt = ["Step {n}: find the {text}. {calc}.", "{conn}, the {text}: {calc}.", "{n}. {Text}: {calc}."][v]
    return [c.rng.choice(COT_INTROS)] + c.step_lines(fmt) + c.recap() + [c.sol.conclusion]


def _tot(c: _Ctx) -> list[str]:
    approaches = list(c.mod.APPROACHES)
    best = approaches[1] if c.mod.TASK == "date" else approaches[0]
    c.rng.shuffle(approaches)
    k = approaches.index(best) + 1
    lines = [c.rng.choice(TOT_INTROS)]
    lines += [f"Approach {i + 1}: {a}." for i, a in enumerate(approaches)]
    lines.append(c.rng.choice(TOT_PICK).format(k=k))
    lines += c.step_lines("- {Text}: {calc}.")
    return lines + c.recap() + [c.sol.conclusion]


def _program(c: _Ctx) -> list[str]:
    code_op = {"+": "+", "-": "-", "*": "*", "/": "//"}
    inline = c.rng.random() < 0.6
    code, declared = [], set()
    for var, value in c.sol.inputs.items():
        code.append(f"{var} = {value}")
        declared.add(var)
    for i, s in enumerate(c.sol.steps):
        for side in ("a", "b"):
            var = s[f"{side}_var"]
            if var and s[f"{side}_ref"] is None and var not in declared:
                code.append(f"{var} = {s[side]}")
                declared.add(var)
        a = s["a_var"] or str(s["a"])
        b = s["b_var"] or str(s["b"])
        line = f"{s['var']} = {a} {code_op[s['op']]} {b}"
        code.append(line + (f"  # {c.calc(i)}" if inline else ""))
        declared.add(s["var"])
    code.append(f"print({c.sol.program_print})")
    lines = [c.rng.choice(PROGRAM_INTROS), "```python", *code, "```"]
    if not inline and c.sol.steps:
        lines.append("It computes " + ", then ".join(c.calc(i) for i in range(len(c.sol.steps))) + ".")
    lines.append(c.rng.choice(PROGRAM_RUN).format(r=c.sol.program_result))
    return lines + [c.sol.conclusion]


def _backward(c: _Ctx) -> list[str]:
    lines = [c.rng.choice(BACKWARD_FWD)] + c.step_lines("{Text}: {calc}.")
    lines.append("Candidate: " + _cap(c.sol.conclusion.removeprefix("So ")))
    if c.sol.steps:
        inv = []
        for s in reversed(c.sol.steps):
            r, op, b, a = inverse_step(s)
            inv.append(f"{r} {c.sym(op)} {b} = {a}")
        lines.append(c.rng.choice(BACKWARD_CHECK) + " " + ", ".join(inv) + ".")
        lines.append(c.rng.choice(BACKWARD_OK))
    return lines + [c.sol.conclusion]


def _facts(c: _Ctx) -> list[str]:
    facts = c.params.get("facts") or []
    lines = [c.rng.choice(FACTS_INTROS)] + [f"- {f}" for f in facts]
    lines.append(c.rng.choice(FACTS_THEN))
    lines += c.step_lines("{Text}: {calc}.")
    return lines + c.recap() + [c.sol.conclusion]


RENDERERS = {"vanilla": _vanilla, "cot": _cot, "tot": _tot, "program": _program, "backward": _backward, "facts": _facts}


def _wrong_solution(rng: random.Random, mod: ModuleType, params: dict[str, Any], sol: Solution, gold: str):
    """A derivation with one slipped step whose final answer exists and differs from gold (None if none)."""
    small = [(i, d) for i in range(len(sol.steps)) for d in (1, -1, 2, -2, 3, -3, 7, -7, 10, -10)]
    large = [(i, d) for i in range(len(sol.steps)) for d in (11, -11, 12, -12, 15, -15, 20, -20)]
    rng.shuffle(small)
    rng.shuffle(large)
    cands = small + large
    for i, d in cands:
        wrong = sol.steps[i]["result"] + d
        if wrong < 0:
            continue
        try:
            alt = mod.solve(params, (i, wrong))
        except Invalid:
            continue
        if alt.answer is not None and alt.answer != gold:
            return alt, i, wrong
    return None


def write_path(q: Question, style: str, profile: Profile, rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """The text of one synthetic path for lab question ``q`` in ``style``, and the faults injected into it."""
    if style not in RENDERERS:
        raise CotdistillError(f"synthetic teachers know the styles {', '.join(RENDERERS)}, not '{style}'")
    task, params = lab_task_of(q)
    mod = TASKS[task]
    family: TaskFamily = get_family(q.task)
    sol = mod.solve(params)
    rates = profile.rates(style)
    u, fault = rng.random(), None
    for f in FAULTS:
        u -= getattr(rates, f)
        if u < 0:
            fault = f
            break
    faults: list[dict[str, Any]] = []
    shown = [s["result"] for s in sol.steps]
    if fault == "wrong_answer":
        found = _wrong_solution(rng, mod, params, sol, q.gold)
        if found:
            alt, i, wrong = found
            faults.append(
                {"kind": "wrong_answer", "step": i, "stated": wrong, "correct": sol.steps[i]["result"],
                 "answer": alt.answer}
            )  # fmt: skip
            sol = alt
            shown = [s["result"] for s in sol.steps]
    elif fault == "spurious" and len(sol.steps) >= 2:
        i = rng.randrange(len(sol.steps) - 1)
        deltas = [d for d in (1, -1, 2, -2, 3, 10) if shown[i] + d >= 0]
        shown[i] += rng.choice(deltas)
        faults.append({"kind": "spurious", "step": i, "stated": shown[i], "correct": sol.steps[i]["result"]})
    mul = rng.choice(["*", "×", "x"])
    ctx = _Ctx(rng, mod, params, sol, shown, profile.verbosity, mul, rng.choice(["/", "÷"]))
    lines = []
    if rng.random() < profile.verbosity:
        lines.append(rng.choice(RESTATE).format(goal=mod.goal(params)))
    lines += RENDERERS[style](ctx)
    body = "\n".join(lines)
    answer = sol.answer or ""
    if fault == "truncation":
        lo, hi = int(len(body) * 0.3), int(len(body) * 0.9)
        cut = rng.randint(lo, max(lo, hi))
        cut = body.rfind(" ", 0, cut) if body.rfind(" ", 0, cut) > 0 else cut
        faults.append({"kind": "truncation", "at_char": cut})
        return body[:cut].rstrip(), faults
    if fault == "format_drift":
        form = rng.choice(DRIFT.get(family.name, DRIFT["math"]))
        faults.append({"kind": "format_drift", "form": form})
        return body + "\n" + form.format(v=answer), faults
    return body + "\n" + family.format_answer(answer), faults


class SyntheticBackend(TeacherBackend):
    """The ``synthetic`` backend: writes lab paths offline, deterministic by (seed, teacher, path key, request seed)."""

    def __init__(self, cfg: TeacherConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed
        self.profile = parse_profile(cfg)

    def complete(self, req: GenRequest) -> Completion:
        """One request's completion (an error completion for a question the lab did not make)."""
        rng = rng_for("synthetic", self.seed, self.cfg.name, req.key, req.seed)
        try:
            text, faults = write_path(req.question, req.style, self.profile, rng)
        except CotdistillError as e:
            return Completion(text=None, error=str(e))
        usage = {"prompt_tokens": len(req.prompt.split()), "completion_tokens": len(text.split())}
        return Completion(text=text, usage=usage, metadata={"faults": faults, "synthetic": True})

    def generate(self, requests: Sequence[GenRequest], on_result: OnResult) -> None:
        for req in requests:
            on_result(req, self.complete(req))
