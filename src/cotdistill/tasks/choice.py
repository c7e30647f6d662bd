"""Multiple choice: the option letter, also recognised through the option's text ("(B)", "B.", "Paris")."""

from __future__ import annotations

import re

from cotdistill.records import Question
from cotdistill.tasks.base import TaskFamily, marker_spans, strip_thinking

LETTERS = "ABCDEFGHIJ"
# (B)  [B]  B)  B.  B:  B  -- a standalone capital letter, optionally bracketed
_LETTER = re.compile(r"(?:\(([A-J])\)|\[([A-J])\]|(?<![\w'])([A-J])(?:[).:,]|\s|$)(?!\w))")

# a lower-case letter counts only where it cannot be a word: bracketed "(b)", or the whole statement "b."
_LOWER = re.compile(r"\s*(?:\(([a-j])\)|\[([a-j])\]|([a-j])[.)]?\s*$)")
_WRAPPER = re.compile(r"\\(?:boxed|text|textbf|mathrm)\s*\{([^{}]*)\}")


def _norm_text(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


class ChoiceFamily(TaskFamily):
    name = "choice"
    answer_instruction = (
        "Think step by step. End your response with the sentence "
        '"The answer is (X)." where X is the letter of the correct option.'
    )

    def render_question(self, q: Question) -> str:
        opts = q.choices or []
        lines = [f"({LETTERS[i]}) {c}" for i, c in enumerate(opts)]
        return q.question.strip() + ("\n\nOptions:\n" + "\n".join(lines) if lines else "")

    def format_answer(self, answer: str) -> str:
        return f"The answer is ({answer})."

    def _letter_in(self, span: str, question: Question | None) -> str | None:
        n = len(question.choices) if question and question.choices else len(LETTERS)
        while _WRAPPER.search(span):  # \boxed{B}, \boxed{\text{B}} -> B
            span = _WRAPPER.sub(r"\1", span)
        span = span.replace("$", " ").replace("**", "")  # $\boxed{B}$, markdown bold **B**
        m = _LETTER.search(span) or _LOWER.match(span)
        if m:
            letter = next(g for g in m.groups() if g).upper()
            if LETTERS.index(letter) < n:
                return letter
        if question and question.choices:
            span_n = _norm_text(span)
            # the longest option text found in the span (so "10 days" is not taken for "1 day")
            hits = [
                (len(_norm_text(c)), i)
                for i, c in enumerate(question.choices)
                if _norm_text(c) and re.search(rf"(?<!\w){re.escape(_norm_text(c))}(?!\w)", span_n)
            ]
            if hits:
                return LETTERS[max(hits)[1]]
        return None

    def extract(self, text: str, question: Question | None = None, lenient: bool = False) -> str | None:
        body = strip_thinking(text)
        if body is None:
            return None
        for _, span in reversed(marker_spans(body)):
            letter = self._letter_in(span, question)
            if letter:
                return letter
        if lenient:
            n = len(question.choices) if question and question.choices else len(LETTERS)
            found = [
                next(g for g in m.groups() if g) for m in re.finditer(r"\(([A-J])\)|^([A-J])[.)]", body, re.MULTILINE)
            ]
            found = [x for x in found if LETTERS.index(x) < n]
            if found:
                return found[-1]
        return None

    def option_letter(self, answer: str, choices: list[str] | None) -> str | None:
        """The option letter ``answer`` names: a letter, ``(B)``, or an option's text; None when it names none."""
        g = answer.strip()
        if len(g) == 1 and g.upper() in LETTERS:
            return g.upper()
        return self._letter_in(g, Question.model_construct(choices=choices)) if g else None

    def canonical_gold(self, gold: str, question: Question | None = None) -> str:
        g = gold.strip()
        if len(g) == 1 and g.upper() in LETTERS:
            return g.upper()
        return self._letter_in(g, question) or g

    def equivalent(self, pred: str | None, gold: str) -> bool:
        if not pred:
            return False
        return pred.strip().strip("().").upper() == self.canonical_gold(gold).strip("().").upper()
