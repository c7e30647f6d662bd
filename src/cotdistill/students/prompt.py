"""How a student is asked: the prompt policy (``prompt: core | bare | template``) and the chat-template rendering
of a prompt and of its response, used by training, the dev check and evaluation alike, so a student is always
asked the way it was trained."""

from __future__ import annotations

from typing import Any

from cotdistill.records import Question
from cotdistill.tasks import get_family


def question_prompt(q: Question, policy: str = "core") -> str:
    """The text a student is asked for ``q`` under ``policy``: ``core`` (the family's core prompt: question,
    step-by-step instruction and answer format; METHODS.md §1f), ``bare`` (the question and its options alone),
    or a template with ``{question}`` (question and options) and optionally ``{instruction}`` (answer format)."""
    fam = get_family(q.task)
    if policy == "core":
        return fam.core_prompt(q)
    if policy == "bare":
        return fam.render_question(q)
    return policy.replace("{question}", fam.render_question(q)).replace("{instruction}", fam.answer_instruction)


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The text a student sees before it answers ``prompt``: its chat template's user turn + generation prompt;
    a tokenizer without a template gets the prompt followed by a newline."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    return prompt + "\n"


def render_response(tokenizer: Any, prompt: str, target: str) -> str:
    """The text after :func:`render_prompt` for a full (prompt, target) conversation, end-of-turn included."""
    if getattr(tokenizer, "chat_template", None):
        head = render_prompt(tokenizer, prompt)
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": target}], tokenize=False
        )
        if full.startswith(head):
            return full[len(head) :]
        return target  # a template whose generation prompt is not a prefix: fall back to the raw target
    return target
