"""NLI labels: entailment / neutral / contradiction, with true / neither / false (and kin) as synonyms."""

from __future__ import annotations

import re

from cotdistill.records import Question
from cotdistill.tasks.base import TaskFamily, marker_spans, strip_thinking

SYNONYMS: dict[str, str] = {
    "entailment": "entailment",
    "entails": "entailment",
    "entailed": "entailment",
    "true": "entailment",
    "yes": "entailment",
    "neutral": "neutral",
    "neither": "neutral",
    "unknown": "neutral",
    "undetermined": "neutral",
    "maybe": "neutral",
    "it is not possible to tell": "neutral",
    "not possible to tell": "neutral",
    "cannot be determined": "neutral",
    "contradiction": "contradiction",
    "contradicts": "contradiction",
    "contradictory": "contradiction",
    "false": "contradiction",
    "no": "contradiction",
}
# longest phrases first so "not possible to tell" wins over "no"
_PATTERN = re.compile(
    r"(?<![\w'-])(" + "|".join(re.escape(k) for k in sorted(SYNONYMS, key=len, reverse=True)) + r")(?![\w'-])",
    re.IGNORECASE,
)


class LabelFamily(TaskFamily):
    name = "label"
    answer_instruction = (
        "Think step by step about whether the premise entails the hypothesis. End your response with the "
        'sentence "The answer is L." where L is entailment, neutral or contradiction.'
    )

    def extract(self, text: str, question: Question | None = None, lenient: bool = False) -> str | None:
        body = strip_thinking(text)
        if body is None:
            return None
        for _, span in reversed(marker_spans(body)):
            m = _PATTERN.search(span)
            if m:
                return SYNONYMS[m.group(1).lower()]
        if lenient:
            hits = _PATTERN.findall(body)
            if hits:
                return SYNONYMS[hits[-1].lower()]
        return None

    def canonical_gold(self, gold: str, question: Question | None = None) -> str:
        m = _PATTERN.search(gold)
        return SYNONYMS[m.group(1).lower()] if m else gold.strip().lower()

    def equivalent(self, pred: str | None, gold: str) -> bool:
        if not pred:
            return False
        return self.canonical_gold(pred) == self.canonical_gold(gold)
