"""Yes/no questions: whole-word yes/no after the answer marker ("nobody" and "eyes" never count)."""

from __future__ import annotations

import re

from cotdistill.tasks.base import WordFamily

_WORD = re.compile(r"(?<![\w'-])(yes|no|true|false)(?![\w'-])", re.IGNORECASE)
_CANON = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


class YesNoFamily(WordFamily):
    name = "yesno"
    answer_instruction = (
        'Think step by step. End your response with the sentence "The answer is yes." or "The answer is no."'
    )
    pattern = _WORD
    canon = _CANON
    lenient_pattern = re.compile(r"(?<![\w'-])(yes|no)(?![\w'-])", re.IGNORECASE)
