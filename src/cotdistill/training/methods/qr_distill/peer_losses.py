"""QR-Distill's peer-teaching terms for one batch (METHODS.md §1d), per co-routed path so they can be averaged
over the whole global batch: ``L_mutual`` and the competence regressors' auxiliary CE, with their log records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from cotdistill.errors import ConfigError
from cotdistill.training.methods.base import Batch
from cotdistill.training.methods.qr_distill.peer import (
    competence_loss,
    competence_target,
    masked_softmax,
    mutual_hidden_loss,
    mutual_logits_loss,
    per_byte,
)

if TYPE_CHECKING:
    from cotdistill.training.methods.qr_distill.method import QRDistill


@dataclass
class PeerRows:
    """Per co-routed path of this process's shard: ``L_mutual`` and competence CE (with gradient), records."""

    mutual: torch.Tensor  # [R]
    competence: torch.Tensor  # [R]
    records: list[dict[str, Any]] = field(default_factory=list)


def byte_losses(method: QRDistill, batch: Batch, ce_all: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """``[R, S]`` each student's loss per byte of the path's text on the rows given (tokenizer-independent)."""
    dev = ce_all[0].device
    n_bytes = torch.tensor([max(1, len(batch.examples[j].target.encode("utf-8"))) for j in rows.tolist()])
    cols = []
    for s, name in enumerate(method.names):
        labels = batch.inputs[name].labels
        n_tok = (labels[rows.to(labels.device)] != -100).sum(1)
        cols.append(per_byte(ce_all[s].to(dev)[rows.to(dev)], n_tok, n_bytes))
    return torch.stack(cols, dim=1)


def peer_rows(
    method: QRDistill,
    batch: Batch,
    hard: torch.Tensor,
    co: torch.Tensor,
    ce_all: list[torch.Tensor],
    pooled: list[torch.Tensor | None],
    full_logits: list[torch.Tensor],
) -> PeerRows:
    """``L_mutual`` and the competence CE on each path of the batch that two or more students took."""
    dev = ce_all[0].device
    space = method.peer_space
    if not bool(co.any()):
        zero = ce_all[0].new_zeros(0)
        return PeerRows(zero, zero)
    rows = co.nonzero().squeeze(1)
    mask = hard[rows].to(dev)
    n_st = len(method.students)
    z = torch.stack(
        [
            space.project(s, pooled[s][rows.to(pooled[s].device)].to(dev))  # type: ignore[index]
            if pooled[s] is not None
            else torch.zeros(len(rows), space.dim, device=dev)
            for s in range(n_st)
        ],
        dim=1,
    )  # [R, S, d]
    comp_logits = space.competence_logits(z.detach())
    gamma = masked_softmax(comp_logits, mask)
    target = competence_target(byte_losses(method, batch, ce_all, rows), mask, method.opts.competence_temperature)
    l_comp = competence_loss(comp_logits, target, mask, reduction="none")
    if full_logits:
        l_mut = _mutual_logits(method, batch, rows, full_logits, gamma, mask)
    else:
        l_mut = mutual_hidden_loss(z, gamma, mask, reduction="none")
    gamma_d, target_d = gamma.detach().cpu(), target.detach().cpu()
    records = [
        {
            "question_id": batch.examples[j].question.id,
            "path_id": batch.examples[j].path.id if batch.examples[j].path else None,  # type: ignore[union-attr]
            "gamma": {method.names[s]: round(float(gamma_d[r, s]), 6) for s in range(n_st) if mask[r, s]},
            "target": {method.names[s]: round(float(target_d[r, s]), 6) for s in range(n_st) if mask[r, s]},
        }
        for r, j in enumerate(rows.tolist())
    ]
    return PeerRows(l_mut, l_comp, records)


def _mutual_logits(
    method: QRDistill,
    batch: Batch,
    rows: torch.Tensor,
    full_logits: list[torch.Tensor],
    gamma: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Token-level KL to the competence-weighted mixture (students that tokenise identically), per row."""
    dev = gamma.device
    ids = [batch.inputs[nm].input_ids for nm in method.names]
    if any(x.shape != ids[0].shape or not torch.equal(x.cpu(), ids[0].cpu()) for x in ids[1:]):
        raise ConfigError(
            "qr-distill peer_mode 'logits': the students tokenized the same example differently "
            "(different chat templates?); use train.options.peer_mode=hidden"
        )
    labels = batch.inputs[method.names[0]].labels.to(dev)[rows.to(dev)]
    v = min(lg.shape[-1] for lg in full_logits)
    lgs = [lg[rows.to(lg.device), :, :v].to(dev) for lg in full_logits]
    return mutual_logits_loss(lgs, labels, gamma, mask, reduction="none")
