"""Tokenise examples per student and pad them dynamically: loss on the response only, EOS is a target.

The prompt is the user turn and the target the assistant turn of the student's chat template when it has one
(presets get a minimal one); without a template the prompt is followed by a newline. Examples longer than
``max_length`` tokens for any student are dropped whole and counted, never cut mid-answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.training.methods.base import StudentInputs

IGNORE = -100


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The text a student sees before it answers ``prompt``: its chat template's user turn + generation prompt.

    Training and generation both use this, so a student is always asked the way it was trained.
    """
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


@dataclass
class Encoded:
    """One example tokenised for one student: ids and how many leading ids are prompt (no loss)."""

    ids: list[int]
    n_prompt: int

    def __len__(self) -> int:
        return len(self.ids)


def encode(tokenizer: Any, prompt: str, target: str) -> Encoded:
    """Prompt ids + response ids (ending in EOS: appended when the template does not already end a turn with it)."""
    head = render_prompt(tokenizer, prompt)
    resp = render_response(tokenizer, prompt, target)
    p_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(resp, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos not in r_ids[-2:]:
        r_ids = [*r_ids, eos]
    bos = getattr(tokenizer, "bos_token_id", None)
    if getattr(tokenizer, "add_bos_token", False) and bos is not None and (not p_ids or p_ids[0] != bos):
        p_ids = [bos, *p_ids]
    return Encoded(list(p_ids) + list(r_ids), len(p_ids))


def collate(items: list[Encoded], pad_id: int) -> StudentInputs:
    """Right-pad to the longest item in the batch (dynamic padding); labels only on response tokens."""
    width = max(len(it) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for i, it in enumerate(items):
        n = len(it.ids)
        t = torch.tensor(it.ids, dtype=torch.long)
        ids[i, :n] = t
        mask[i, :n] = 1
        labels[i, it.n_prompt : n] = t[it.n_prompt :]
    return StudentInputs(input_ids=ids, attention_mask=mask, labels=labels)
