"""QR-Distill's cooperative peer teaching (METHODS.md §1d): students that share a path teach each other.

``hidden`` mode: each student's response-pooled last hidden state is mapped to a shared space by a **frozen**
projection ``z_s = P_s (pool_s - mu_s)`` (trained projections would collapse to a constant to zero the loss), a
trained competence regressor per student scores ``w_s . z_s + b_s``, ``gamma = softmax_s`` over the students that
took the path, and each is pulled towards the detached ensemble ``sum_s gamma_s z_s``. Two identical students
must have ``L_mutual = 0``, so the projections are never independent random matrices (two copies of one model
would disagree by construction): ``shared`` gives every student one seeded orthogonal matrix (equal hidden
sizes), ``fitted`` fits each ``P_s`` once on a calibration batch (a generalised CCA: the shared space is the
consensus of the students' whitened representations) and freezes it. Both centre and scale on the calibration
batch, so ``E ||z_s||^2 = 1`` there and ``L_mutual`` is on one scale whatever the hidden sizes. ``random`` keeps
the old independent projections, for comparison only.

The regressors learn from an auxiliary cross-entropy towards ``softmax_s(-CE_s / T)`` with ``CE_s`` the
student's loss **per byte** of the path's text (tokenizers with finer tokens have lower per-token losses whatever
the student knows; per byte every student is on one scale): the student with the lower loss is the more competent.

``logits`` mode (students sharing a tokenizer): token-level KL from each student to the detached,
competence-weighted mixture of the students' next-token distributions (deep mutual learning).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cotdistill.errors import ConfigError


def _orthogonal(dim: int, h: int, gen: torch.Generator) -> torch.Tensor:
    """``[dim, h]`` with orthonormal rows (dim <= h) or columns (dim > h): QR of a seeded Gaussian."""
    flat = torch.randn(max(dim, h), min(dim, h), generator=gen)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))
    return q if dim > h else q.T


def resolve_projection(mode: str, hidden_sizes: list[int]) -> str:
    """``auto`` -> ``shared`` when every student has the same hidden size, else ``fitted``."""
    if mode == "auto":
        return "shared" if len(set(hidden_sizes)) == 1 else "fitted"
    if mode == "shared" and len(set(hidden_sizes)) != 1:
        raise ConfigError(
            f"qr-distill projection 'shared' needs students of one hidden size, got {hidden_sizes}: use 'fitted'"
        )
    return mode


class PeerSpace(nn.Module):
    """Frozen projections ``P_s: H_s -> d`` with calibration means (buffers, saved) and the competence regressors."""

    def __init__(self, hidden_sizes: list[int], dim: int = 128, seed: int = 0, projection: str = "auto") -> None:
        super().__init__()
        self.mode = resolve_projection(projection, hidden_sizes)
        gen = torch.Generator().manual_seed(seed + 7919)
        shared = _orthogonal(dim, hidden_sizes[0], gen) if self.mode == "shared" else None
        for s, h in enumerate(hidden_sizes):
            w = shared.clone() if shared is not None else _orthogonal(dim, h, gen)
            self.register_buffer(f"proj_{s}", w, persistent=True)
            self.register_buffer(f"mean_{s}", torch.zeros(h), persistent=True)
        self.register_buffer("calibrated", torch.tensor(self.mode == "random"), persistent=True)
        # one linear competence scorer per student (the w_s of gamma = softmax_s(w_s . z_s)); zero init = uniform
        self.competence = nn.Parameter(torch.zeros(len(hidden_sizes), dim))
        self.competence_bias = nn.Parameter(torch.zeros(len(hidden_sizes)))
        self.dim = dim
        self.n_students = len(hidden_sizes)

    @property
    def needs_calibration(self) -> bool:
        """Whether :meth:`calibrate` still has to run (``shared`` and ``fitted`` centre and scale on a batch)."""
        return not bool(self.calibrated)

    def calibrate(self, pooled: list[torch.Tensor]) -> None:
        """Fit the frozen maps on one calibration batch: ``pooled[s]`` is ``[K, H_s]`` (the same K paths)."""
        with torch.no_grad():
            xs = [p.detach().float().cpu() for p in pooled]
            means = [x.mean(0) for x in xs]
            if self.mode == "fitted":
                projs = fit_projections([x - m for x, m in zip(xs, means, strict=True)], self.dim)
            else:
                projs = []
                for s, (x, m) in enumerate(zip(xs, means, strict=True)):
                    p = getattr(self, f"proj_{s}").detach().cpu().clone()
                    if self.mode == "shared":  # the one shared P, scaled by each student's own spread
                        rms = float(((x - m) @ p.T).pow(2).sum(-1).mean().sqrt())
                        p = p / max(rms, 1e-6)
                    projs.append(p)
            for s, (p, m) in enumerate(zip(projs, means, strict=True)):
                getattr(self, f"proj_{s}").copy_(p)
                getattr(self, f"mean_{s}").copy_(m if self.mode != "random" else torch.zeros_like(m))
            self.calibrated.fill_(True)

    def project(self, s: int, pooled: torch.Tensor) -> torch.Tensor:
        """``[N, H_s]`` pooled hidden states of student ``s`` -> ``[N, d]`` shared-space vectors."""
        proj: torch.Tensor = getattr(self, f"proj_{s}")
        mean: torch.Tensor = getattr(self, f"mean_{s}")
        return (pooled.float() - mean) @ proj.T

    def competence_logits(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, S, d]`` shared vectors -> ``[N, S]`` competence scores ``w_s . z_s + b_s``.

        ``z`` is read in standardised coordinates (``sqrt(d) z``: ``E ||z||^2 = 1``, so a coordinate is about
        ``1/sqrt(d)``), as the router reads standardised embeddings."""
        return (z * math.sqrt(self.dim) * self.competence[None]).sum(-1) + self.competence_bias[None]


def fit_projections(centred: list[torch.Tensor], dim: int, ridge: float = 0.1) -> list[torch.Tensor]:
    """Generalised CCA (MAXVAR) on a calibration batch: ``[K, H_s]`` centred states -> ``[dim, H_s]`` maps.

    Each student's states are whitened (their left singular vectors), the shared coordinates ``G`` are the top
    left singular vectors of all of them side by side (the directions every student represents), and each map
    is the ridge least-squares fit from the student's states to ``G`` (``ridge`` times the mean eigenvalue of its
    covariance: a small ridge inverts directions of little calibration variance, which then blow ``z`` up as
    training moves the states; measured in ``benchmarks/bench_qr_peer.py``), scaled so ``E ||z||^2 = 1`` on the
    batch. Rows beyond the batch's rank are zero. Identical inputs give identical maps (the computation is the
    same), so identical students agree exactly.
    """
    k = centred[0].shape[0]
    bases = []
    for x in centred:
        u, sv, _ = torch.linalg.svd(x.double(), full_matrices=False)
        r = int((sv > 1e-6 * float(sv.max().clamp(min=1e-12))).sum())
        bases.append(u[:, : min(r, dim)])
    d = max(1, min(dim, k - 1, *(b.shape[1] for b in bases)))
    g = torch.linalg.svd(torch.cat(bases, dim=1), full_matrices=False)[0][:, :d]  # [K, d], orthonormal columns
    out = []
    for x in centred:
        xd = x.double()
        gram = xd.T @ xd
        lam = ridge * float(torch.trace(gram)) / gram.shape[0] + 1e-12
        w = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xd.T @ g)  # [H, d]
        w = w / float((xd @ w).pow(2).sum(-1).mean().sqrt().clamp(min=1e-12))
        p = torch.zeros(dim, x.shape[1], dtype=torch.float64)
        p[:d] = w.T
        out.append(p.float())
    return out


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask`` (rows with no True give all zeros)."""
    filled = logits.masked_fill(~mask, float("-inf"))
    out = torch.softmax(filled, dim=-1)
    return torch.nan_to_num(out, nan=0.0)


def competence_target(ce: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax_s(-CE_s / T)`` over the students in ``mask`` (detached): lower loss, more competent.

    Pass per-byte losses (:func:`per_byte`) when the students tokenise differently."""
    if temperature <= 0:
        raise ConfigError(f"competence temperature must be > 0, got {temperature}")
    return masked_softmax(-ce.detach().float() / temperature, mask)


def per_byte(ce: torch.Tensor, n_tokens: torch.Tensor, n_bytes: torch.Tensor) -> torch.Tensor:
    """Token-mean losses ``[N]`` -> loss per byte of the path's text: ``CE * tokens / bytes`` (detached)."""
    return ce.detach().float() * n_tokens.float().to(ce.device) / n_bytes.float().to(ce.device).clamp(min=1.0)


def competence_loss(
    comp_logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of the regressors' ``softmax_s`` against ``target``, per path (row) or their mean."""
    if comp_logits.shape[0] == 0:
        return comp_logits.sum() * 0.0 if reduction == "mean" else comp_logits.new_zeros(0)
    logp = torch.log_softmax(comp_logits.masked_fill(~mask, float("-inf")), dim=-1)
    logp = logp.masked_fill(~mask, 0.0)
    rows = -(target * logp).sum(-1)
    return rows.mean() if reduction == "mean" else rows


def mutual_hidden_loss(
    z: torch.Tensor, gamma: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """``sum_s ||z_s - z_ens||^2`` over the students in ``mask``, per row or its mean; ``z_ens`` is detached.

    ``z`` ``[N, S, d]``, ``gamma`` ``[N, S]`` (zero outside ``mask``, rows summing to 1).
    """
    if z.shape[0] == 0:
        return z.sum() * 0.0 if reduction == "mean" else z.new_zeros(0)
    z_ens = (gamma.detach()[..., None] * z.detach()).sum(1, keepdim=True)
    rows = (((z - z_ens) ** 2).sum(-1) * mask.to(z.dtype)).sum(-1)
    return rows.mean() if reduction == "mean" else rows


def mutual_logits_loss(
    logits: list[torch.Tensor], labels: torch.Tensor, gamma: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Token-level ``KL(mix || p_s)`` per student to the detached competence-weighted mixture ``mix``.

    ``logits``: one ``[N, T, V]`` per student (same tokenisation), ``labels`` ``[N, T]`` (-100 off the response),
    ``gamma``/``mask`` ``[N, S]``. Logits at position ``t`` predict token ``t+1``, as in the CE.
    Mean over response tokens, summed over the students that took the path; per path, or the mean over paths.
    """
    n = labels.shape[0]
    if n == 0:
        return logits[0].sum() * 0.0 if reduction == "mean" else logits[0].new_zeros(0)
    tok = (labels[:, 1:] != -100).to(torch.float32)  # [N, T-1]
    logps = [torch.log_softmax(lg[:, :-1].float(), dim=-1) for lg in logits]
    with torch.no_grad():
        mix = sum(gamma[:, s, None, None].float() * lp.exp() for s, lp in enumerate(logps))
        log_mix = torch.log(mix.clamp_min(1e-12))
    rows = logits[0].new_zeros(n, dtype=torch.float32)
    denom = tok.sum(-1).clamp(min=1.0)
    for s, lp in enumerate(logps):
        kl = (mix * (log_mix - lp)).sum(-1)  # [N, T-1]
        rows = rows + (kl * tok).sum(-1) / denom * mask[:, s].float()
    return rows.mean() if reduction == "mean" else rows


def check_shared_tokenizer(tokenizers: list, names: list[str]) -> None:
    """``logits`` mode needs one vocabulary: error clearly when students tokenize differently."""
    ref = tokenizers[0].get_vocab()
    for tok, name in zip(tokenizers[1:], names[1:], strict=True):
        if tok.get_vocab() != ref:
            raise ConfigError(
                f"qr-distill peer_mode 'logits' needs students that share a tokenizer, but '{name}' and "
                f"'{names[0]}' have different vocabularies: use train.options.peer_mode=hidden"
            )
