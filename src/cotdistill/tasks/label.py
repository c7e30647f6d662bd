"""NLI labels: entailment / neutral / contradiction, with true / neither / false (and kin) as synonyms."""

from __future__ import annotations

import re

from cotdistill.tasks.base import WordFamily

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


class LabelFamily(WordFamily):
    name = "label"
    answer_instruction = (
        "Think step by step about whether the premise entails the hypothesis. End your response with the "
        'sentence "The answer is L." where L is entailment, neutral or contradiction.'
    )
    pattern = _PATTERN
    canon = SYNONYMS
