"""QR-Distill's cooperative peer teaching (METHODS.md §1d): students that share a path teach each other.

``hidden`` mode: each student's response-pooled last hidden state is mapped to a shared space by a **fixed**
random orthogonal projection (trained projections would collapse to a constant to zero the loss), a trained
competence regressor per student scores ``w_s . z_s``, ``gamma = softmax_s`` over the students that took the
path, and each is pulled towards the detached ensemble ``sum_s gamma_s z_s``. The regressors learn from an
auxiliary cross-entropy towards ``softmax_s(-CE_s / T)``: the student with the lower loss is the more competent.

``logits`` mode (students sharing a tokenizer): token-level KL from each student to the detached,
competence-weighted mixture of the students' next-token distributions (deep mutual learning).
"""

from __future__ import annotations

import torch
from torch import nn

from cotdistill.errors import ConfigError


class PeerSpace(nn.Module):
    """Fixed orthogonal projections ``P_s: H_s -> d`` (buffers, seeded, saved) and trained competence regressors."""

    def __init__(self, hidden_sizes: list[int], dim: int = 128, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed + 7919)
        for s, h in enumerate(hidden_sizes):
            w = torch.empty(dim, h)
            # orthogonal rows (dim <= h) or columns (dim > h): QR of a seeded Gaussian, as nn.init.orthogonal_
            flat = torch.randn(max(dim, h), min(dim, h), generator=gen)
            q, r = torch.linalg.qr(flat)
            q = q * torch.sign(torch.diagonal(r))
            w.copy_(q if dim > h else q.T)
            self.register_buffer(f"proj_{s}", w, persistent=True)
        # one linear competence scorer per student (the w_s of gamma = softmax_s(w_s . z_s)); zero init = uniform
        self.competence = nn.Parameter(torch.zeros(len(hidden_sizes), dim))
        self.competence_bias = nn.Parameter(torch.zeros(len(hidden_sizes)))
        self.dim = dim
        self.n_students = len(hidden_sizes)

    def project(self, s: int, pooled: torch.Tensor) -> torch.Tensor:
        """``[N, H_s]`` pooled hidden states of student ``s`` -> ``[N, d]`` shared-space vectors."""
        proj: torch.Tensor = getattr(self, f"proj_{s}")
        return pooled.float() @ proj.T

    def competence_logits(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, S, d]`` shared vectors -> ``[N, S]`` competence scores ``w_s . z_s + b_s``."""
        return (z * self.competence[None]).sum(-1) + self.competence_bias[None]


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask`` (rows with no True give all zeros)."""
    filled = logits.masked_fill(~mask, float("-inf"))
    out = torch.softmax(filled, dim=-1)
    return torch.nan_to_num(out, nan=0.0)


def competence_target(ce: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax_s(-CE_s / T)`` over the students in ``mask`` (detached): lower loss, more competent."""
    if temperature <= 0:
        raise ConfigError(f"competence temperature must be > 0, got {temperature}")
    return masked_softmax(-ce.detach().float() / temperature, mask)


def competence_loss(comp_logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the regressors' ``softmax_s`` against ``target``, mean over the paths (rows) given."""
    if comp_logits.shape[0] == 0:
        return comp_logits.sum() * 0.0
    logp = torch.log_softmax(comp_logits.masked_fill(~mask, float("-inf")), dim=-1)
    logp = logp.masked_fill(~mask, 0.0)
    return -(target * logp).sum(-1).mean()


def mutual_hidden_loss(z: torch.Tensor, gamma: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_s ||z_s - z_ens||^2`` over the students in ``mask``, mean over rows; ``z_ens`` is detached.

    ``z`` ``[N, S, d]``, ``gamma`` ``[N, S]`` (zero outside ``mask``, rows summing to 1).
    """
    if z.shape[0] == 0:
        return z.sum() * 0.0
    z_ens = (gamma.detach()[..., None] * z.detach()).sum(1, keepdim=True)
    sq = ((z - z_ens) ** 2).sum(-1) * mask.to(z.dtype)
    return sq.sum(-1).mean()


def mutual_logits_loss(
    logits: list[torch.Tensor], labels: torch.Tensor, gamma: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Token-level ``KL(mix || p_s)`` per student to the detached competence-weighted mixture ``mix``.

    ``logits``: one ``[N, T, V]`` per student (same tokenisation), ``labels`` ``[N, T]`` (-100 off the response),
    ``gamma``/``mask`` ``[N, S]``. Logits at position ``t`` predict token ``t+1``, as in the CE.
    Mean over response tokens, summed over the students that took the path, mean over paths.
    """
    n = labels.shape[0]
    if n == 0:
        return logits[0].sum() * 0.0
    tok = (labels[:, 1:] != -100).to(torch.float32)  # [N, T-1]
    logps = [torch.log_softmax(lg[:, :-1].float(), dim=-1) for lg in logits]
    with torch.no_grad():
        mix = sum(gamma[:, s, None, None].float() * lp.exp() for s, lp in enumerate(logps))
        log_mix = torch.log(mix.clamp_min(1e-12))
    total = logits[0].new_zeros((), dtype=torch.float32)
    denom = tok.sum(-1).clamp(min=1.0)
    for s, lp in enumerate(logps):
        kl = (mix * (log_mix - lp)).sum(-1)  # [N, T-1]
        per_path = (kl * tok).sum(-1) / denom
        total = total + (per_path * mask[:, s].float()).sum()
    return total / n


def check_shared_tokenizer(tokenizers: list, names: list[str]) -> None:
    """``logits`` mode needs one vocabulary: error clearly when students tokenize differently."""
    ref = tokenizers[0].get_vocab()
    for tok, name in zip(tokenizers[1:], names[1:], strict=True):
        if tok.get_vocab() != ref:
            raise ConfigError(
                f"qr-distill peer_mode 'logits' needs students that share a tokenizer, but '{name}' and "
                f"'{names[0]}' have different vocabularies: use train.options.peer_mode=hidden"
            )
