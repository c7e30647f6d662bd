"""A calculator for decoding: when a generation has just written an arithmetic expression and ``=`` ("74 - 5 ="),
the result is computed and written for the model ("74 - 5 = 69"), which then continues. Small students choose the
right expression far more often than they compute it (Cobbe et al. 2021 decode GSM8K the same way; Magister et al.
2022 use an external calculator when distilling CoT into T5). Only pure expressions count: numbers (``$``, ``,``
thousands and ``%``-free decimals allowed), ``+ - * / x × ÷`` and parentheses, at least one operator.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch

_NUM = r"\$?\d+(?:,\d{3})*(?:\.\d+)?"
_OP = r"[-+*/x×÷]"
_TERM = rf"\(*\s*-?{_NUM}\s*\)*"
# an expression of at least two terms ending in "=", at the end of the text (trailing blanks allowed)
_TAIL = re.compile(rf"(?<![\w.])({_TERM}(?:\s*{_OP}\s*{_TERM})+)\s*=[ \t]*$")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_value(node.left), _value(node.right))
    raise ValueError("not arithmetic")


def evaluate(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression in the calculator's notation, or None (not one, or / 0)."""
    text = expression.strip().replace("$", "").replace(",", "").replace("×", "*").replace("÷", "/").replace("x", "*")
    try:
        return _value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def format_result(value: Fraction) -> str:
    """An integer as is, anything else rounded to at most 4 decimals without trailing zeros."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def pending_result(text: str) -> str | None:
    """The result to write when ``text`` ends with an arithmetic expression and ``=``, else None."""
    m = _TAIL.search(text)
    if m is None or m.group(1).count("(") != m.group(1).count(")"):
        return None
    value = evaluate(m.group(1))
    return None if value is None else format_result(value)


def equals_ids(tokenizer: Any) -> torch.Tensor:
    """The ids of every token whose text ends with ``=`` (trailing blanks aside): only after one can a result be due."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    eq = [i for i, t in enumerate(vocab) if t and tokenizer.convert_tokens_to_string([t]).rstrip().endswith("=")]
    return torch.tensor(sorted(eq), dtype=torch.long)


class CalculatorStop:
    """A stopping criterion that stops a sequence right after it writes ``=`` behind an arithmetic expression.

    ``starts[row]``: where the row's generated tokens begin in the (left-padded) input, so only they are read;
    ``eq_ids``: :func:`equals_ids` of the tokenizer; ``fired[row]``: the sequence length at which the row was
    stopped (the first time only) and the result to write there."""

    def __init__(self, tokenizer: Any, starts: list[int], eq_ids: torch.Tensor):
        self.tokenizer = tokenizer
        self.starts = starts
        self.fired: dict[int, tuple[int, str]] = {}
        self._eq_ids = eq_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in torch.isin(input_ids[:, -1].cpu(), self._eq_ids).nonzero().flatten().tolist():
            if row in self.fired:
                continue
            result = pending_result(self.tokenizer.decode(input_ids[row, self.starts[row] :].cpu()))
            if result is not None:
                self.fired[row] = (int(input_ids.shape[1]), result)
                done[row] = True
        return done


# one generate() call: token lists (prompt + what is generated so far), a token budget and the stop criterion ->
# the new tokens per row (right-padded) and, when greedy, their log-probs
Step = Callable[[list[list[int]], int, CalculatorStop], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class CalculatedRow:
    """One sequence decoded with the calculator: its generated tokens (results included) and the model's
    log-probs of its own tokens."""

    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    calls: int = 0
    hit_eos: bool = False
    done: bool = False


def decode_with_calculator(
    step: Step, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int, eos: set[int], eq_ids: torch.Tensor
) -> list[CalculatedRow]:
    """Decode every prompt, stopping each sequence at a pending expression to write its result, until EOS or
    ``max_new_tokens`` (results count against the budget). Each round is one batched ``step`` over the rows
    still running, prompt and tokens so far re-encoded; ``eq_ids`` is :func:`equals_ids` of ``tokenizer``."""
    rows = [CalculatedRow(p) for p in prompts]
    while active := [r for r in rows if not r.done]:
        seqs = [r.prompt + r.tokens for r in active]
        width = max(len(s) for s in seqs)
        starts = [width - len(s) + len(r.prompt) for s, r in zip(seqs, active, strict=True)]
        stop = CalculatorStop(tokenizer, starts, eq_ids)
        new, lp = step(seqs, max_new_tokens - min(len(r.tokens) for r in active), stop)
        for i, r in enumerate(active):
            fired = stop.fired.get(i)
            if fired is not None:
                fired = (fired[0] - width, fired[1])
            _fold(r, new[i].tolist(), None if lp is None else lp[i].tolist(), fired, tokenizer, eos)
            if len(r.tokens) >= max_new_tokens:
                r.tokens, r.logprobs, r.done = r.tokens[:max_new_tokens], r.logprobs[:max_new_tokens], True
    return rows


def _fold(
    row: CalculatedRow, new: list[int], lp: list[float] | None, fired: tuple[int, str] | None, tok: Any, eos: set[int]
) -> None:
    """Add one round's tokens to ``row``: up to EOS (done), up to the ``=`` the calculator stopped at (``fired``:
    new tokens up to it and the result, which is appended; the row runs on), or all of them (the budget ran out)."""
    end_eos = next((k + 1 for k, t in enumerate(new) if t in eos), None)
    if fired is not None and (end_eos is None or fired[0] < end_eos):
        n, result = fired
        row.tokens += new[:n] + tok.encode(" " + result, add_special_tokens=False)
        row.logprobs += [] if lp is None else lp[:n]
        row.calls += 1
        return
    n = end_eos if end_eos is not None else len(new)
    row.tokens += new[:n]
    row.logprobs += [] if lp is None else lp[:n]
    row.hit_eos, row.done = end_eos is not None, True
