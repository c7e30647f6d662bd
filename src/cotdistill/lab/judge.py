"""A judge for paths on lab questions: re-checks every stated ``a op b = c`` and that each gold step is there.

It reads the question's exact solution (``metadata.solution``), never the path's recorded faults, so it can
judge any teacher's paths on lab questions (synthetic or a real model). :class:`SyntheticJudge` is the
filter's ``synthetic`` judge kind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from cotdistill.quality.arithmetic import arithmetic_verdict
from cotdistill.quality.judges import Verdict
from cotdistill.records import Question, ReasoningPath

# NUMBER (op NUMBER)+ = NUMBER, whole numbers; ops + - * × x / ÷ (not inside dates like 01/09/2021)
CALC = re.compile(r"(?<![\w/.])(\d+(?:\s*[-+*×x/÷]\s*\d+)+)\s*=\s*(\d+)(?![\w/]|\.\d)")
_TOKEN = re.compile(r"\d+|[-+*×x/÷]")


def _evaluate(expr: str) -> Fraction | None:
    """Left-to-right with the usual precedence of * and / over + and -; None on division by zero."""
    toks = _TOKEN.findall(expr)
    norm = {"×": "*", "x": "*", "÷": "/"}
    terms: list[Fraction] = []
    signs: list[int] = []
    cur = Fraction(int(toks[0]))
    sign = 1
    i = 1
    while i < len(toks):
        op, num = norm.get(toks[i], toks[i]), Fraction(int(toks[i + 1]))
        if op == "*":
            cur *= num
        elif op == "/":
            if num == 0:
                return None
            cur /= num
        else:
            terms.append(cur)
            signs.append(sign)
            cur, sign = num, (1 if op == "+" else -1)
        i += 2
    terms.append(cur)
    signs.append(sign)
    return sum((s * t for s, t in zip(signs, terms, strict=True)), Fraction(0))


def stated_calculations(text: str) -> list[tuple[str, bool]]:
    """Every ``a op b = c`` statement in ``text`` with whether it is true."""
    out = []
    for m in CALC.finditer(text):
        value = _evaluate(m.group(1))
        out.append((m.group(0), value is not None and value == int(m.group(2))))
    return out


def judge_lab_path(q: Question, text: str, require_steps: bool = True) -> tuple[bool, str]:
    """``(valid, reason)``: invalid on a false calculation, or (``require_steps``) a gold step never stated.

    A gold step counts as stated when some true statement has the same operands and result (either order for
    ``+`` and ``*``), so a path that reorders or regroups its work is not punished.
    """
    calcs = stated_calculations(text)
    for stmt, ok in calcs:
        if not ok:
            return False, f"false calculation: {stmt}"
    if require_steps:
        seen = set()
        for stmt, _ in calcs:
            nums = [int(n) for n in re.findall(r"\d+", stmt)]
            seen.add((frozenset(nums[:-1]), nums[-1]))
        for s in q.metadata.get("solution", []):
            key = (frozenset((s["a"], s["b"])), s["result"])
            if key not in seen:
                return False, f"missing step: {s['text']} ({s['a']} {s['op']} {s['b']} = {s['result']})"
    return True, ""


class SyntheticJudge:
    """``filter.judge.kind: synthetic``: the arithmetic judge, plus, on lab questions, :func:`judge_lab_path`
    (every gold step stated; it reads the question's exact solution, never a path's recorded faults)."""

    name = "synthetic"

    def judge(self, items: Sequence[tuple[Question, ReasoningPath]]) -> list[Verdict]:
        out = []
        for q, p in items:
            ok, reason = arithmetic_verdict(p.text)
            if ok and q.metadata.get("solution"):
                ok, lab_reason = judge_lab_path(q, p.text)
                reason = lab_reason or reason
            out.append(Verdict("valid" if ok else "invalid", reason))
        return out
