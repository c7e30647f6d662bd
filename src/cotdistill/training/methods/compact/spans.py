"""Where the answer is, in characters and in tokens (METHODS.md §2b-§2e): the gold answer's span in a path, the
semantic mask over a rationale's tokens, and the rationale closed with the answer sentence and gold.

Spans land on the answer token itself: a choice answer "A" is the letter in "(A)" / "A)" / "A." (case-sensitive,
never the article "a"), a math answer is the number equal to gold (not the words after it), a yes/no or NLI
answer is the label word. Everything is computed once per (student, prompt, target) and cached by the method.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cotdistill.records import Question
from cotdistill.tasks import get_family
from cotdistill.tasks.base import ANSWER_MARKER, marker_spans, strip_thinking
from cotdistill.tasks.math import NUMBER

_LENIENT_LETTER = re.compile(r"\(([A-J])\)|^([A-J])[.)]", re.MULTILINE)


def _letter_forms(letter: str) -> re.Pattern[str]:
    """The option letter as an answer: "(A)", "[A]" or a standalone capital "A" (case-sensitive)."""
    x = re.escape(letter)
    return re.compile(rf"\(({x})\)|\[({x})\]|(?<![\w'])({x})(?![\w'])")


def _group_span(m: re.Match[str]) -> tuple[int, int]:
    """The span of the first group that matched (the letter inside its brackets)."""
    for g in range(1, (m.re.groups or 0) + 1):
        if m.group(g) is not None:
            return m.span(g)
    return m.span()


def _in_segment(seg: str, question: Question) -> tuple[int, int] | None:
    """The answer token's span inside the text after an answer marker (already known to state gold)."""
    family = get_family(question.task)
    gold = family.canonical_gold(question.gold, question)
    hits: list[tuple[int, int]] = []
    if question.task == "math":
        hits = [m.span() for m in NUMBER.finditer(seg) if family.equivalent(m.group(0).strip(), question.gold)]
    elif question.task == "choice":
        hits = [_group_span(m) for m in _letter_forms(gold).finditer(seg)]
        idx = ord(gold[0]) - ord("A") if gold else -1
        if not hits and question.choices and 0 <= idx < len(question.choices) and len(question.choices[idx]) > 1:
            hits = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(question.choices[idx])}(?!\w)", seg, re.I)]
    elif hasattr(family, "pattern"):
        hits = [m.span(1) for m in family.pattern.finditer(seg) if family.equivalent(m.group(1), question.gold)]
    return hits[0] if hits else None  # the first, as the families' extraction reads a statement


def _without_marker(text: str, question: Question) -> tuple[int, int] | None:
    """A path with no answer marker (real datasets): the last mention of the gold answer in answer form."""
    family = get_family(question.task)
    gold = family.canonical_gold(question.gold, question)
    if question.task == "math":
        hits = [m.span() for m in NUMBER.finditer(text) if family.equivalent(m.group(0).strip(), question.gold)]
    elif question.task == "choice":
        hits = [_group_span(m) for m in _LENIENT_LETTER.finditer(text) if (m.group(1) or m.group(2)) == gold]
        idx = ord(gold[0]) - ord("A") if gold else -1
        if question.choices and 0 <= idx < len(question.choices) and len(question.choices[idx]) > 1:
            opt = re.escape(question.choices[idx])
            hits += [m.span() for m in re.finditer(rf"(?<!\w){opt}(?!\w)", text, re.IGNORECASE)]
    else:
        pat = getattr(family, "lenient_pattern", None) or getattr(family, "pattern", None)
        hits = [m.span(1) for m in pat.finditer(text) if family.equivalent(m.group(1), question.gold)] if pat else []
    return max(hits) if hits else None


def answer_char_span(text: str, question: Question) -> tuple[int, int] | None:
    """Character span of the final answer stated in ``text`` when it equals the gold answer; None otherwise.

    After the last answer marker when there is one (a path whose last marker states another answer has no gold
    span: a stray gold number earlier is not its answer), else the last mention of gold in answer form.
    """
    if strip_thinking(text) is None:  # cut off mid-thought: no final answer
        return None
    family = get_family(question.task)
    spans = marker_spans(text)
    if not spans:
        return _without_marker(text, question)
    pos, line = spans[-1]
    start = text.index(line, pos)
    if not family.equivalent(family.extract(text[pos:], question, lenient=True), question.gold):
        return None
    seg = line.rstrip().rstrip(".;:!").rstrip()
    inner = _in_segment(seg, question)
    if inner is None:
        return (start, start + len(seg)) if seg else None
    return start + inner[0], start + inner[1]


def char_to_token_span(offsets: Sequence[tuple[int, int]], char_span: tuple[int, int]) -> tuple[int, int] | None:
    """The tokens ``[start, end)`` whose character offsets overlap ``char_span`` (offsets of one text)."""
    cs, ce = char_span
    idx = [i for i, (s, e) in enumerate(offsets) if e > s and s < ce and e > cs]
    if not idx:
        return None
    return idx[0], idx[-1] + 1


def rationale_end(text: str, question: Question) -> int:
    """Where the rationale stops and the answer statement starts: the last answer marker (else the gold answer
    span when there is no marker, else the end of the text)."""
    marks = marker_spans(text)
    if marks:
        return marks[-1][0]
    span = answer_char_span(text, question)
    return span[0] if span is not None else len(text)


def closed_text(text: str, question: Question) -> tuple[str, tuple[int, int] | None]:
    """The rationale (up to its last answer marker) closed with the family's answer sentence for gold, and the gold
    span in it: how a branch that does not end in the gold answer is scored (METHODS.md §2e)."""
    body = text[: rationale_end(text, question)].rstrip() if marker_spans(text) else text.rstrip()
    family = get_family(question.task)
    sentence = family.format_answer(family.canonical_gold(question.gold, question))
    closed = (body + "\n" if body else "") + sentence
    span = answer_char_span(closed, question)
    return closed, span


@dataclass(frozen=True)
class TargetTokens:
    """A training target in the student's own tokens, with what COMPACT reads from it (cached per example).

    ``content``: the semantic mask M_t (alphanumeric tokens of the rationale, not answer-marker tokens nor the
    answer statement); ``last``: the last non-blank token; ``last_content``: the last token with a letter or
    digit (S_cons's feature by default: "The answer is 16." -> "16", not the closing period); ``answer``: the
    gold answer's token span (None when the target does not end in gold); ``closed_ids`` / ``common`` /
    ``closed_answer``: the rationale closed with the answer sentence and gold, how many leading tokens it shares
    with the target, and the gold span in it (only when ``answer`` is None).
    """

    ids: list[int]
    content: list[bool]
    last: int | None
    last_content: int | None
    answer: tuple[int, int] | None
    closed_ids: list[int] | None = None
    common: int = 0
    closed_answer: tuple[int, int] | None = None


def _tokens(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def content_mask(text: str, offsets: Sequence[tuple[int, int]], end: int) -> list[bool]:
    """M_t: a token counts when it has a letter or digit, lies before ``end`` and is not part of an answer marker."""
    markers = [m.span() for m in ANSWER_MARKER.finditer(text)]
    out = []
    for s, e in offsets:
        piece = text[s:e]
        ok = e > s and s < end and any(ch.isalnum() for ch in piece)
        if ok and any(s < me and e > ms for ms, me in markers):
            ok = False
        out.append(ok)
    return out


def analyse_target(tokenizer: Any, text: str, question: Question) -> TargetTokens:
    """Tokenise ``text`` once and find the gold span, the semantic mask, the last token and (when ``text`` does not
    end in gold) the closed rationale."""
    ids, offsets = _tokens(tokenizer, text)
    content = content_mask(text, offsets, rationale_end(text, question))
    blank = [i for i, (s, e) in enumerate(offsets) if text[s:e].strip()]
    last = blank[-1] if blank else (len(ids) - 1 if ids else None)
    alnum = [i for i, (s, e) in enumerate(offsets) if any(ch.isalnum() for ch in text[s:e])]
    last_content = alnum[-1] if alnum else last
    cs = answer_char_span(text, question)
    answer = char_to_token_span(offsets, cs) if cs is not None else None
    if answer is not None:
        return TargetTokens(ids, content, last, last_content, answer)
    closed, span = closed_text(text, question)
    c_ids, c_off = _tokens(tokenizer, closed)
    c_answer = char_to_token_span(c_off, span) if span is not None else None
    common = 0
    while common < min(len(ids), len(c_ids)) and ids[common] == c_ids[common]:
        common += 1
    if c_answer is None or common == 0:
        return TargetTokens(ids, content, last, last_content, None)
    return TargetTokens(ids, content, last, last_content, None, c_ids, common, c_answer)


def locate(response: Sequence[int], target: Sequence[int]) -> tuple[int, int] | None:
    """``(offset, skip)``: target token ``j >= skip`` is response token ``offset + j`` (a template may add tokens
    around the target, and its first token may merge with the template's: up to two leading tokens may be
    skipped); None when the target's tokens are not in the response (truncated, or tokenised differently)."""
    n = len(target)
    for skip in range(min(3, n)):
        part = list(target[skip:])
        for start in range(0, len(response) - len(part) + 1):
            if list(response[start : start + len(part)]) == part:
                return start - skip, skip
    return None
