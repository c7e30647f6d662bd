"""The arithmetic judge: re-computes every stated calculation ``a op b (op c)* = d`` in a path.

Local and deterministic. A path with a false calculation is rejected and the reason names it. Numbers may carry
commas, currency, percent signs and a few unit words (``15 bottle caps + 18 wrappers = 33 items``); operators are
``+ - − – x × * · / ÷`` (and ``\\times``, ``\\cdot``, ``\\div``); ``20% of 50 = 10`` is a multiplication.
Reading generously where text is ambiguous keeps fault-free paths from being rejected: a statement is true when
its stated result matches the value under standard precedence *or* left-to-right reading, within the rounding
the stated result implies (an integer result of a division may also be its floor or ceiling).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_TOKEN = re.compile(
    rf"""
    (?P<num>(?:[$€£¥₹]\s?)?(?:{_NUM})(?:\s?%)?)
  | (?P<op>\\times|\\cdot|\\div|[+\-−–×*·/÷])
  | (?P<eq>==|!=|<=|>=|=)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<word>[A-Za-z][A-Za-z'’]*)
  | (?P<nl>\n)
  | (?P<sp>[ \t\r]+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_OPS = {"+": "+", "-": "-", "−": "-", "–": "-", "×": "*", "*": "*", "·": "*", "/": "/", "÷": "/"}
_OPS.update({"\\times": "*", "\\cdot": "*", "\\div": "/"})
_WORD_OPS = {"x": "*", "times": "*", "plus": "+", "minus": "-"}
_MAX_UNIT_WORDS = 3
_MAX_EXPR_TOKENS = 96  # tokens looked at either side of '=': keeps the (quadratic) scans below linear in the line
_GLUED_UNIT = re.compile(r"(?!(?:st|nd|rd|th)$)[a-z]{2,5}")  # "10km", "5kg"; never ordinals ("1st") or "2xM"
_HAS_DIGIT = re.compile(r"\d")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
# words that end a unit phrase: they start a clause, so the number before them is not an operand
_STOP_WORDS = {"and", "or", "is", "are", "was", "were", "so", "then", "which", "that", "to", "of", "for", "if"}


@dataclass(frozen=True, slots=True)  # slots: a long line makes a token per word, a dict each costs memory
class Tok:
    kind: str  # num, op, eq, lp, rp, word, brk
    text: str
    value: Fraction | None = None
    percent: bool = False
    start: int = 0
    end: int = 0
    glued: bool = False  # an operator written right against the next digit: "-5" (a sign), not "- 5"


@dataclass(frozen=True)
class Calculation:
    """One stated calculation: its text, the stated result and the re-computed value, and whether they agree."""

    text: str
    stated: float
    computed: float
    ok: bool


def _parse_num(s: str) -> tuple[Fraction, bool]:
    percent = s.rstrip().endswith("%")
    digits = re.sub(r"[^\d.]", "", s)
    return Fraction(digits), percent


def tokenize(text: str) -> list[Tok]:
    """Tokens of ``text``: numbers (value, percent flag), operators, '=', parentheses, words, breaks."""
    toks: list[Tok] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        s = m.group(0)
        if kind == "sp":
            continue
        if kind == "num":
            try:
                value, pct = _parse_num(s)
            except (ValueError, ZeroDivisionError):
                toks.append(Tok("brk", s, start=m.start(), end=m.end()))
                continue
            # a number glued to letters ("2x", "3rd", "10km") or digits-dot ("1." list marker) is not an operand
            after = text[m.end() : m.end() + 1]
            before = text[m.start() - 1 : m.start()] if m.start() else ""
            if (after.isalpha() and not s.endswith("%")) or before.isalpha() or before in {".", ","}:
                glued = re.match(r"[A-Za-z]+", text[m.end() :])
                unit = glued.group(0) if glued else ""
                if after.isalpha() and _GLUED_UNIT.fullmatch(unit) and not before.isalpha():
                    toks.append(Tok("num", s, value, pct, m.start(), m.end()))  # a unit glued on: 10km
                    continue
                toks.append(Tok("brk", s, start=m.start(), end=m.end()))
                continue
            toks.append(Tok("num", s, value, pct, m.start(), m.end()))
        elif kind == "op":
            glued = text[m.end() : m.end() + 1].isdigit()
            toks.append(Tok("op", _OPS[s], start=m.start(), end=m.end(), glued=glued))
        elif kind == "word":
            w = s.lower()
            if w in _WORD_OPS:
                toks.append(Tok("wop", _WORD_OPS[w], start=m.start(), end=m.end()))
            else:
                toks.append(Tok("word", w, start=m.start(), end=m.end()))
        elif kind in ("eq", "lp", "rp"):
            toks.append(Tok(kind, s, start=m.start(), end=m.end()))
        else:
            toks.append(Tok("brk", s, start=m.start(), end=m.end()))
    return toks


def _operand_tokens(toks: list[Tok]) -> list[Tok]:
    """Drop unit words after numbers ("15 bottle caps + 18 wrappers") and turn word operators into operators."""
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "wop":
            # "3 x 4", "3 times 4": an operator only between two operands
            prev_ok = bool(out) and out[-1].kind in ("num", "rp")
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if prev_ok and nxt is not None and nxt.kind in ("num", "lp"):
                out.append(Tok("op", t.text, start=t.start, end=t.end))
            else:
                out.append(Tok("word", t.text, start=t.start, end=t.end))
            i += 1
            continue
        if t.kind == "word" and t.text == "of" and out and out[-1].kind == "num" and out[-1].percent:
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if nxt is not None and nxt.kind == "num":
                out.append(Tok("op", "*", start=t.start, end=t.end))
                i += 1
                continue
        if (
            t.kind == "op"
            and t.text == "/"
            and out
            and out[-1].kind == "num"
            and i + 1 < len(toks)
            and toks[i + 1].kind == "word"
            and len(toks[i + 1].text) >= 2
        ):
            i += 2  # "249 pages/book": a unit ratio, not a division
            continue
        if t.kind == "word" and out and out[-1].kind in ("num", "rp", "unit"):
            # up to 3 unit words ("bottle caps") after an operand, if an operator or '=' follows them
            j = i
            while j < len(toks) and j - i < _MAX_UNIT_WORDS and toks[j].kind == "word":
                if toks[j].text in _STOP_WORDS or len(toks[j].text) < 2:
                    break
                j += 1
            if j > i and j < len(toks) and toks[j].kind in ("op", "eq", "wop"):
                i = j
                continue
        if t.kind == "lp" and out and out[-1].kind in ("num", "rp"):
            # "87 (wrappers) – 35": a parenthesised unit, not a sub-expression
            k = i + 1
            words = 0
            while k < len(toks) and toks[k].kind == "word":
                k += 1
                words += 1
            if 0 < words <= _MAX_UNIT_WORDS and k < len(toks) and toks[k].kind == "rp":
                i = k + 1
                continue
        out.append(t)
        i += 1
    return out


def _trailing_expression(seg: list[Tok]) -> list[Tok]:
    """The longest well-formed expression at the end of ``seg`` (may be empty; cut to ``_MAX_EXPR_TOKENS``)."""
    seg = seg[-_MAX_EXPR_TOKENS:]
    best: list[Tok] = []
    for start in range(len(seg) - 1, -1, -1):
        cand = seg[start:]
        if cand[0].kind not in ("num", "lp") and not (cand[0].kind == "op" and cand[0].text == "-" and cand[0].glued):
            if cand[0].kind not in ("op", "rp"):
                break
            continue
        if _well_formed(cand):
            best = cand
    return best


def _well_formed(toks: list[Tok]) -> bool:
    depth = 0
    expect_operand = True
    for t in toks:
        if expect_operand:
            if t.kind == "num":
                expect_operand = False
            elif t.kind == "lp":
                depth += 1
            elif t.kind == "op" and t.text == "-" and t.glued:
                continue  # a sign: "-5"
            else:
                return False
        else:
            if t.kind == "op":
                expect_operand = True
            elif t.kind == "rp" and depth > 0:
                depth -= 1
            else:
                return False
    return depth == 0 and not expect_operand


def _leading_number(seg: list[Tok]) -> tuple[Tok | None, bool, int]:
    """The stated result at the start of ``seg``: (number token, negative, tokens used)."""
    neg = False
    i = 0
    if seg and seg[0].kind == "op" and seg[0].text == "-" and seg[0].glued:
        neg, i = True, 1
    if i < len(seg) and seg[i].kind == "num":
        return seg[i], neg, i + 1
    return None, False, 0


class _Eval:
    """Evaluate an operand/operator token list under one reading: precedence or left-to-right, percent mode."""

    def __init__(self, toks: list[Tok], precedence: bool, percent_relative: bool):
        self.toks, self.i = toks, 0
        self.precedence, self.pr = precedence, percent_relative

    def value(self, t: Tok) -> Fraction:
        if t.percent and self.pr:
            return t.value / 100  # type: ignore[operator]
        return t.value  # type: ignore[return-value]

    def atom(self) -> tuple[Fraction, bool]:
        t = self.toks[self.i]
        if t.kind == "op" and t.text == "-":
            self.i += 1
            v, p = self.atom()
            return -v, p
        if t.kind == "lp":
            self.i += 1
            v = self.expr()
            self.i += 1  # ')'
            return v, False
        self.i += 1
        return self.value(t), t.percent

    def apply(self, op: str, a: Fraction, b: Fraction, b_pct: bool, a_pct: bool) -> Fraction:
        if op in "+-" and self.pr and b_pct and not a_pct:
            return a * (1 + b) if op == "+" else a * (1 - b)  # "100 + 10% = 110"
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            raise ZeroDivisionError
        return a / b

    def expr(self) -> Fraction:
        if not self.precedence:
            v, vp = self.atom()
            while self.i < len(self.toks) and self.toks[self.i].kind == "op":
                op = self.toks[self.i].text
                self.i += 1
                b, bp = self.atom()
                v, vp = self.apply(op, v, b, bp, vp), False
            return v
        v, vp = self.term()
        while self.i < len(self.toks) and self.toks[self.i].kind == "op" and self.toks[self.i].text in "+-":
            op = self.toks[self.i].text
            self.i += 1
            b, bp = self.term()
            v, vp = self.apply(op, v, b, bp, vp), False
        return v

    def term(self) -> tuple[Fraction, bool]:
        v, vp = self.atom()
        while self.i < len(self.toks) and self.toks[self.i].kind == "op" and self.toks[self.i].text in "*/":
            op = self.toks[self.i].text
            self.i += 1
            b, bp = self.atom()
            v, vp = self.apply(op, v, b, bp, vp), False
        return v, vp


def _readings(expr: list[Tok]) -> list[Fraction]:
    vals = []
    for precedence in (True, False):
        for pr in (True, False):
            try:
                vals.append(_Eval(expr, precedence, pr).expr())
            except (ZeroDivisionError, IndexError):
                continue
    return vals


def _matches(value: Fraction, stated: Fraction, stated_text: str, has_division: bool) -> bool:
    if value == stated:
        return True
    digits = stated_text.split(".", 1)[1] if "." in stated_text else ""
    decimals = len(re.sub(r"\D", "", digits))
    # rounded or truncated to the stated decimals (17.666 for 17.6667); an integer result: rounded only
    tol = (Fraction(1, 10**decimals) if decimals else Fraction(1, 2)) + Fraction(1, 10**9)
    if abs(value - stated) <= tol:
        return True
    if abs(value - stated) <= abs(stated) * Fraction(1, 10**6):
        return True
    if has_division and decimals == 0 and stated.denominator == 1:
        return stated in (math.floor(value), math.ceil(value))
    return False


def _stated_candidates(tok: Tok, neg: bool, expr: list[Tok]) -> list[Fraction]:
    v = -tok.value if neg else tok.value  # type: ignore[operator]
    if tok.percent:
        return [v / 100, v]  # "= 20%": compare as 0.2, or as 20 when the operands were percents too
    return [v]


def find_calculations(text: str) -> list[Calculation]:
    """Every stated calculation in ``text`` with its verdict (statements with no operator are not checked)."""
    out: list[Calculation] = []
    for line in text.split("\n"):
        if "=" not in line or not _HAS_DIGIT.search(line):
            continue
        line = _BULLET.sub(lambda m: " " * len(m.group(0)), line)
        toks = _operand_tokens(tokenize(line))
        # split into segments at '='; comparisons (==, <=, ...) break the chain
        segs: list[list[Tok]] = [[]]
        seps: list[str] = []
        for t in toks:
            if t.kind == "eq":
                segs.append([])
                seps.append(t.text)
            else:
                segs[-1].append(t)
        for k, sep in enumerate(seps):
            if sep != "=":
                continue
            left, right = segs[k], segs[k + 1]
            if k > 0 and seps[k - 1] != "=":
                continue
            expr = _trailing_expression(left)
            if expr and len(expr) < len(left) and left[len(left) - len(expr) - 1].kind == "op":
                continue  # "x + 25 - 25 = 43", "X * 7 + 6 = 41": part of a symbolic expression
            if not any(t.kind == "op" and (i > 0 and expr[i - 1].kind in ("num", "rp")) for i, t in enumerate(expr)):
                continue
            num, neg, used = _leading_number(right)
            if num is None:
                continue
            if used + 1 < len(right) and right[used].kind == "op" and right[used + 1].kind not in ("num", "lp"):
                continue  # "= 28 / x": an equation with an unknown, not a calculation
            candidates = _readings(expr)
            if not candidates:
                continue
            # "12 * 3 = 36 - 5 = 31" states 36; "2 * 3 = 3 * 2" compares two expressions
            has_div = any(t.kind == "op" and t.text == "/" for t in expr)
            stated_vals = _stated_candidates(num, neg, expr)
            stated_text = num.text
            ok = any(_matches(c, s, stated_text, has_div) for c in candidates for s in stated_vals)
            if not ok:
                full = right[: _expression_prefix_len(right)]
                if len(full) > used:
                    rvals = _readings(full)
                    ok = any(c == r for c in candidates for r in rvals)
            a, b = expr[0].start, num.end
            seg_text = line[a:b]
            out.append(
                Calculation(text=seg_text.strip(), stated=float(stated_vals[0]), computed=float(candidates[0]), ok=ok)
            )
    return out


def _expression_prefix_len(seg: list[Tok]) -> int:
    """Length of the longest well-formed expression at the start of ``seg`` (up to ``_MAX_EXPR_TOKENS``)."""
    seg = seg[:_MAX_EXPR_TOKENS]
    best = 0
    for end in range(1, len(seg) + 1):
        if _well_formed(seg[:end]):
            best = end
    return best


def _fmt(x: float) -> str:
    return f"{x:.6g}" if not float(x).is_integer() else str(int(x))


def arithmetic_verdict(text: str) -> tuple[bool, str]:
    """(valid, reason): invalid names the first false calculation and its true value."""
    calcs = find_calculations(text)
    bad = [c for c in calcs if not c.ok]
    if bad:
        c = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return False, f"false calculation: {c.text} (re-computed: {_fmt(c.computed)}){more}"
    return True, f"{len(calcs)} calculation(s) checked, all true"


__all__ = ["Calculation", "arithmetic_verdict", "find_calculations", "tokenize"]
