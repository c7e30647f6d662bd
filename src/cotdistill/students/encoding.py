"""Token ids of a student's examples and batches: one BOS rule, loss on the response only, dynamic padding.

Examples longer than ``train.max_length`` tokens for any student are dropped whole by the training data stage,
never cut mid-answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.students.prompt import render_prompt, render_response

IGNORE = -100


@dataclass
class StudentInputs:
    """One student's tokenisation of a batch, examples in the batch's order (dynamic padding, right-padded)."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T], -100 on prompt and padding; loss on response tokens (EOS included)

    def to(self, device: torch.device | str) -> StudentInputs:
        return StudentInputs(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


@dataclass
class Encoded:
    """One example tokenised for one student: ids and how many leading ids are prompt (no loss)."""

    ids: list[int]
    n_prompt: int

    def __len__(self) -> int:
        return len(self.ids)


def rendered_ids(tokenizer: Any, rendered: str) -> list[int]:
    """Token ids of an already rendered prompt: no automatic special tokens, BOS first when the tokenizer asks."""
    ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if getattr(tokenizer, "add_bos_token", False) and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of ``prompt`` as the student sees it (rendered by :func:`render_prompt`)."""
    return rendered_ids(tokenizer, render_prompt(tokenizer, prompt))


def encode(tokenizer: Any, prompt: str, target: str) -> Encoded:
    """Prompt ids + response ids (ending in EOS: appended when the template does not already end a turn with it)."""
    p_ids = prompt_ids(tokenizer, prompt)
    r_ids = tokenizer(render_response(tokenizer, prompt, target), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos not in r_ids[-2:]:
        r_ids = [*r_ids, eos]
    return Encoded(list(p_ids) + list(r_ids), len(p_ids))


def pad_id(tokenizer: Any) -> int:
    """The id a student's batches are padded with (its pad token, else EOS)."""
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def collate_rows(rows: list[tuple[list[int], list[int]]], pad: int) -> StudentInputs:
    """Right-pad (ids, labels) rows to the longest one (dynamic padding); the mask covers the ids."""
    width = max(len(ids) for ids, _ in rows)
    ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        ids_t[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[i, : len(ids)] = 1
        labels[i, : len(lab)] = torch.tensor(lab, dtype=torch.long)
    return StudentInputs(input_ids=ids_t, attention_mask=mask, labels=labels)


def collate(items: list[Encoded], pad: int) -> StudentInputs:
    """Right-pad encoded examples to the longest in the batch; labels only on response tokens."""
    return collate_rows([(it.ids, [IGNORE] * it.n_prompt + it.ids[it.n_prompt :]) for it in items], pad)
