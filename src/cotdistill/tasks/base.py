"""The task-family interface: core prompt, answer extraction from generated text, answer equivalence."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

from cotdistill.records import Question

# "The answer is X", "The final answer is: X", "The best answer is X", "Answer: X", "#### X".
ANSWER_MARKER = re.compile(
    r"(?:\b(?:the\s+)?(?:final\s+|best\s+|correct\s+)?answer\s*(?:is|:)\s*:?|^\s*####\s*)",
    re.IGNORECASE | re.MULTILINE,
)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_thinking(text: str) -> str | None:
    """Drop ``<think>...</think>`` blocks; None when a think block was never closed (cut off mid-thought).

    A ``</think>`` with no opening tag (chat templates that open the block inside the prompt, as R1-style
    models do) ends the thinking: only the text after it is the response.
    """
    text = _THINK_BLOCK.sub(" ", text)
    if re.search(r"<think>", text, re.IGNORECASE):
        return None
    return re.split(r"</think>", text, flags=re.IGNORECASE)[-1]


def marker_spans(text: str) -> list[tuple[int, str]]:
    """(position, text after the marker up to the end of its line) for each answer marker, in order.

    The span is verbatim text (callers locate it in ``text``); families drop markdown bold themselves.
    """
    spans = []
    for m in ANSWER_MARKER.finditer(text):
        line = text[m.end() :].split("\n", 1)[0].strip()
        if line:
            spans.append((m.start(), line))
    return spans


class TaskFamily(ABC):
    """How one kind of task is asked, answered and graded. Subclasses are stateless singletons."""

    name: str
    #: the instruction appended to every prompt; it fixes the answer format that ``extract`` reads
    answer_instruction: str

    def core_prompt(self, q: Question) -> str:
        """The task's core prompt: question (and options) followed by the answer-format instruction."""
        return f"{self.render_question(q)}\n\n{self.answer_instruction}"

    def render_question(self, q: Question) -> str:
        """The question text as shown to a model (choice tasks add their options)."""
        return q.question.strip()

    def format_answer(self, answer: str) -> str:
        """The closing sentence that states ``answer`` in this family's format."""
        return f"The answer is {answer}."

    @abstractmethod
    def extract(self, text: str, question: Question | None = None, lenient: bool = False) -> str | None:
        """The final answer stated in generated ``text`` (last one wins), canonicalised; None if absent.

        ``lenient`` also accepts an answer with no marker (the last number / option / yes-no in the text),
        for sources whose paths never state one explicitly.
        """

    @abstractmethod
    def equivalent(self, pred: str | None, gold: str) -> bool:
        """Whether predicted answer ``pred`` means the same as ``gold``."""

    def canonical_gold(self, gold: str, question: Question | None = None) -> str:
        """Gold answer in canonical form (what ``extract`` would return for it)."""
        return gold.strip()

    def closing_sentence(self, text: str, q: Question) -> str | None:
        """The answer sentence that closes ``text`` when strict extraction finds no answer in it but lenient
        extraction does (the path's own answer, right or wrong); None when ``text`` already states one or has none.
        Imported real paths rarely end with the sentence a strict reader needs, so training appends it."""
        if self.extract(text, q) is not None:
            return None
        answer = self.extract(text, q, lenient=True)
        return None if answer is None else self.format_answer(answer)

    def is_correct(self, text: str, q: Question, lenient: bool = False) -> bool:
        """Extract from ``text`` and compare with the question's gold answer."""
        return self.equivalent(self.extract(text, q, lenient=lenient), q.gold)


class WordFamily(TaskFamily):
    """A family whose answer is one of a few words with synonyms (yes/no, NLI labels): the last answer statement
    holding one of them wins; ``lenient`` also takes the last such word anywhere (``lenient_pattern``)."""

    pattern: re.Pattern[str]
    canon: dict[str, str]
    lenient_pattern: re.Pattern[str] | None = None

    def extract(self, text: str, question: Question | None = None, lenient: bool = False) -> str | None:
        body = strip_thinking(text)
        if body is None:
            return None
        for _, span in reversed(marker_spans(body)):
            m = self.pattern.search(span)
            if m:
                return self.canon[m.group(1).lower()]
        if lenient:
            hits = (self.lenient_pattern or self.pattern).findall(body)
            if hits:
                return self.canon[hits[-1].lower()]
        return None

    def canonical_gold(self, gold: str, question: Question | None = None) -> str:
        m = self.pattern.search(gold)
        return self.canon[m.group(1).lower()] if m else gold.strip().lower()

    def equivalent(self, pred: str | None, gold: str) -> bool:
        if not pred:
            return False
        return self.canonical_gold(pred) == self.canonical_gold(gold)
