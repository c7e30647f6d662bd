"""A student on the training loop's device: forward under autocast, per-example response CE, pooled states."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cotdistill.students.encoding import StudentInputs
from cotdistill.training.methods.base import StudentHandle, StudentOutput
from cotdistill.training.sharding import full, like


class Student(StudentHandle):
    """A student as the loop and the methods see it: name, model, tokenizer, forward with response-token CE."""

    def __init__(self, name: str, model: nn.Module, tokenizer: Any, device: torch.device, bf16: bool, lora: bool):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.device, self.bf16, self.lora = device, bf16, lora

    def forward(
        self, inputs: StudentInputs, hidden: bool = False, states: bool = False, cache: bool = False
    ) -> StudentOutput:
        ids = inputs.input_ids.to(self.device)
        mask = inputs.attention_mask.to(self.device)
        labels = inputs.labels.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=hidden or states, use_cache=cache)
        logits = out.logits
        # token_loss[:, t] is the CE of predicting labels[:, t] from position t-1 (0 where labels == -100);
        # only response positions are cast to float and scored (prompt and padding logits are never touched)
        shift = labels[:, 1:]
        sel = shift != -100
        ce_sel = nn.functional.cross_entropy(logits[:, :-1][sel].float(), shift[sel], reduction="none")
        ce = torch.zeros(shift.shape, dtype=ce_sel.dtype, device=ce_sel.device).masked_scatter(sel, ce_sel)
        token_loss = torch.cat([ce.new_zeros(ce.size(0), 1), ce], dim=1)
        n = (labels != -100).sum(1).clamp(min=1)
        loss = token_loss.sum(1) / n
        pooled = None
        if hidden:
            h = out.hidden_states[-1].float()
            resp = (labels != -100).unsqueeze(-1).to(h.dtype)
            pooled = (h * resp).sum(1) / resp.sum(1).clamp(min=1)
        last = out.hidden_states[-1] if states else None
        kv = out.past_key_values if cache else None
        return StudentOutput(loss=loss, logits=logits, token_loss=token_loss, hidden=pooled, states=last, cache=kv)

    def trainable_state(self, keep: bool = True) -> dict[str, torch.Tensor]:
        """The trainable parameters only (frozen base weights are rebuilt from their source on resume), whole: under
        FSDP a collective every process calls (``keep=False``: take part in the gathers, keep nothing)."""
        out = {}
        for k, p in self.model.named_parameters():
            if p.requires_grad:
                whole = full(p.detach())
                if keep:
                    out[k] = whole.cpu().clone()
        return out

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(like(v, params[k]))
