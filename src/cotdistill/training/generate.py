"""Small batched greedy generation for the loop's dev-accuracy check (evaluation has its own, fuller one)."""

from __future__ import annotations

from typing import Any

import torch

from cotdistill.training.collate import render_prompt


@torch.no_grad()
def greedy(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, batch_size: int = 32) -> list[str]:
    """Greedy continuations of ``prompts`` (rendered with the student's chat template), batched, left-padded.

    Each continuation stops at EOS; the returned text excludes the prompt and special tokens.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outs: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = [
                tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]
                for p in prompts[i : i + batch_size]
            ]
            width = max(len(e) for e in enc)
            ids = torch.full((len(enc), width), pad, dtype=torch.long)
            mask = torch.zeros((len(enc), width), dtype=torch.long)
            for j, e in enumerate(enc):
                ids[j, width - len(e) :] = torch.tensor(e, dtype=torch.long)
                mask[j, width - len(e) :] = 1
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=pad,
            )
            for row in gen[:, width:]:
                outs.append(tokenizer.decode(row, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return outs
