"""Representation drift: how far distillation moved a student's internal representations, from the mean-pooled
last hidden states of its prompts before and after training (linear CKA, Kornblith et al. 2019; mean cosine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cotdistill.students.encoding import rendered_ids


@torch.inference_mode()
def pooled_states(model: Any, tokenizer: Any, prompts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
    """``[N, H]``: the last hidden state of each rendered prompt, mean-pooled over its tokens (float32, CPU)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = [rendered_ids(tokenizer, p) for p in prompts[i : i + batch_size]]
            width = max(len(e) for e in enc)
            ids = torch.full((len(enc), width), pad, dtype=torch.long)
            mask = torch.zeros((len(enc), width), dtype=torch.long)
            for j, e in enumerate(enc):
                ids[j, : len(e)] = torch.tensor(e, dtype=torch.long)
                mask[j, : len(e)] = 1
            res = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
            h = res.hidden_states[-1].float()
            m = mask.to(h.device).unsqueeze(-1).float()
            out.append(((h * m).sum(1) / m.sum(1).clamp(min=1)).cpu())
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0, 0)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same N inputs (``[N, H1]``, ``[N, H2]``): 1 for identical
    representations (up to rotation and isotropic scale), towards 0 for unrelated ones."""
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError("linear CKA needs the same N >= 2 inputs on both sides")
    x = (x - x.mean(0, keepdim=True)).double()
    y = (y - y.mean(0, keepdim=True)).double()
    hsic = (y.T @ x).norm() ** 2
    norm = (x.T @ x).norm() * (y.T @ y).norm()
    return float(hsic / norm) if float(norm) > 0 else 0.0


def mean_cosine(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Mean cosine similarity of each input's two vectors (None when the hidden sizes differ)."""
    if x.shape != y.shape:
        return None
    return float(torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=1).mean())
