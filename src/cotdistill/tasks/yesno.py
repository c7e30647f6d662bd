"""Yes/no questions: whole-word yes/no after the answer marker ("nobody" and "eyes" never count)."""

from __future__ import annotations

import re

from cotdistill.records import Question
from cotdistill.tasks.base import TaskFamily, marker_spans, strip_thinking

_WORD = re.compile(r"(?<![\w'-])(yes|no|true|false)(?![\w'-])", re.IGNORECASE)
_CANON = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


class YesNoFamily(TaskFamily):
    name = "yesno"
    answer_instruction = (
        'Think step by step. End your response with the sentence "The answer is yes." or "The answer is no."'
    )

    def extract(self, text: str, question: Question | None = None, lenient: bool = False) -> str | None:
        body = strip_thinking(text)
        if body is None:
            return None
        for _, span in reversed(marker_spans(body)):
            m = _WORD.search(span)
            if m:
                return _CANON[m.group(1).lower()]
        if lenient:
            words = re.findall(r"(?<![\w'-])(yes|no)(?![\w'-])", body, re.IGNORECASE)
            if words:
                return words[-1].lower()
        return None

    def canonical_gold(self, gold: str, question: Question | None = None) -> str:
        m = _WORD.search(gold)
        return _CANON[m.group(1).lower()] if m else gold.strip().lower()

    def equivalent(self, pred: str | None, gold: str) -> bool:
        if not pred:
            return False
        return self.canonical_gold(pred) == self.canonical_gold(gold)
