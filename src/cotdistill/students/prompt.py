"""How a student is asked: the chat-template rendering of a prompt and of its response, used by training, the
dev check and evaluation alike, so a student is always asked the way it was trained."""

from __future__ import annotations

from typing import Any


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
