"""Math: numbers and expressions. Extraction of \\boxed{}, "The answer is", "####"; math-verify equivalence."""

from __future__ import annotations

import re
import threading
from fractions import Fraction

from cotdistill.records import Question
from cotdistill.tasks.base import TaskFamily, marker_spans, strip_thinking

_NUM = r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|[-−]?\.\d+"
NUMBER = re.compile(rf"(?<![\w.])(?:{_NUM})(?![\d])")
_LATEX_CMD = re.compile(r"\\(?:d?frac|tfrac|sqrt|pi|cdot|times|infty|left|right|pm)\b|\^|_\{")
_CALC = re.compile(rf"\s*(?:{_NUM})\s*[-+*/×x÷·]\s*[\d(]")
_CURRENCY = re.compile(r"[$€£¥₹]|\\\$|\bUSD\b|\bdollars?\b|\bcents?\b", re.IGNORECASE)


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """(start offset, content) of every ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, braces matched
    (``\\frac{\\pi}{2}`` stays whole); an unclosed one is skipped."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append((m.start(), text[m.end() : i - 1].strip()))
    return out


def find_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (balanced braces)."""
    return [content for _, content in boxed_spans(text)]


def _strip_dollars(s: str) -> str:
    inner = re.findall(r"\$\$?(.+?)\$\$?", s)
    if inner and any(_LATEX_CMD.search(x) or NUMBER.search(x) for x in inner):
        return inner[-1]
    return s


def normalize(ans: str) -> str:
    """Canonical text of a math answer: no currency, thousands commas, units, \\text{}, trailing period."""
    s = ans.replace("**", "").strip()  # markdown bold: "**42**", "**Answer:** 42"
    boxed = find_boxed(s)
    if boxed:
        s = boxed[-1]
    s = _strip_dollars(s) if s.count("$") >= 2 and not re.fullmatch(r"\$\s*[\d.,]+", s) else s
    s = re.sub(r"\\[()\[\]]", " ", s)  # \( \) \[ \] math delimiters
    s = re.sub(r"\\text\{[^}]*\}|\\mbox\{[^}]*\}", " ", s)
    s = s.replace("\\!", "").replace("\\,", "").replace("\\%", "%").replace("^\\circ", "").replace("°", "")
    s = s.replace("−", "-").replace("\\$", "")
    s = _CURRENCY.sub(" ", s)
    s = s.strip().rstrip(".;:!").strip()
    if _LATEX_CMD.search(s):
        return s.strip("$ ")
    nums = NUMBER.findall(s)
    if nums:
        # "32 wrappers", "1,234.5 m", "x = 7" -> the (first) number of the final statement
        stripped = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)
        if "=" in stripped and _CALC.match(stripped):
            # "7 - 2 = 5", "3 * 4 = 12 cookies": the statement is a calculation; its result is the answer
            stripped = stripped.rsplit("=", 1)[1]
        m = NUMBER.match(stripped.strip())
        num = m.group(0) if m else nums[0]
        num = re.sub(r"\s+", "", num).replace(",", "").replace("−", "-")
        return num + ("%" if re.match(re.escape(num) + r"\s*%", s.replace(",", "")) else "")
    return s.strip("$ ")


def _as_fraction(s: str) -> Fraction | None:
    s = s.rstrip("%").strip()
    m = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if m:
        s = f"{m.group(1)}/{m.group(2)}"
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            return Fraction(a.strip()) / Fraction(b.strip())
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _math_verify_equal(pred: str, gold: str) -> bool:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # math-verify times out with signal.alarm, which only works on the main thread: elsewhere run untimed.
    on_main = threading.current_thread() is threading.main_thread()
    timeout = 5 if on_main else None
    cfg = [LatexExtractionConfig(), ExprExtractionConfig()]
    try:
        g = parse(f"${gold}$", extraction_config=cfg, parsing_timeout=timeout)
        p = parse(f"${pred}$", extraction_config=cfg, parsing_timeout=timeout)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=timeout))
    except Exception:
        return False


class MathFamily(TaskFamily):
    name = "math"
    answer_instruction = (
        "Solve the problem step by step. End your response with the sentence "
        '"The answer is N." where N is the final number or expression.'
    )

    def extract(self, text: str, question: Question | None = None, lenient: bool = False) -> str | None:
        body = strip_thinking(text)
        if body is None:
            return None
        candidates: list[tuple[int, str]] = []
        for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", body):
            inner = find_boxed(body[m.start() :])
            if inner:
                candidates.append((m.start(), inner[0]))
        for span_start, span in marker_spans(body):
            candidates.append((span_start, span))
        candidates = [(pos, c) for pos, c in candidates if NUMBER.search(c) or _LATEX_CMD.search(c)]
        if candidates:
            return normalize(max(candidates, key=lambda t: t[0])[1])
        if lenient:
            nums = NUMBER.findall(body)
            if nums:
                return normalize(nums[-1])
        return None

    def canonical_gold(self, gold: str, question: Question | None = None) -> str:
        return normalize(gold)

    def equivalent(self, pred: str | None, gold: str) -> bool:
        if pred is None or not pred.strip():
            return False
        p, g = normalize(pred), normalize(gold)
        if p == g:
            return True
        fp, fg = _as_fraction(p), _as_fraction(g)
        if fp is not None and fg is not None:
            if fp == fg:
                return True
            return abs(float(fp) - float(fg)) <= 1e-6 * max(1.0, abs(float(fg)))
        return _math_verify_equal(p, g)


__all__ = ["MathFamily", "normalize", "find_boxed"]
