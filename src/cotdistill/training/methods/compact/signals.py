"""The paper variant's signals in the student's own space (METHODS.md §2b, §2c, §2e): the information gain S_MI,
the attention-graph consensus S_cons and the multi-CoT consistency L_MCon.

S_MI and S_cons read detached hidden states of the training forward; the W_Q/W_K projection of S_cons is the
student's own last attention layer, called without gradient (its LoRA adapters included), or a seeded random
orthogonal matrix. L_MCon is differentiable on both sides, as in MCC-KD.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Projection:
    """``v -> (q, u)``, each ``[n, heads, head_dim]`` (key heads repeated to the query heads), and its source."""

    project: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    source: str  # "attention:<module name>" or "random"


def _heads(config: object, q_dim: int, k_dim: int) -> tuple[int, int]:
    """(query heads, key heads) from the model config; one head when the shapes do not fit them."""
    n = int(getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None) or 1)
    kv = int(getattr(config, "num_key_value_heads", None) or n)
    if q_dim % n or n % kv or k_dim * n != q_dim * kv:
        return 1, 1
    return n, kv


def _split(q: torch.Tensor, k: torch.Tensor, n_heads: int, n_kv: int) -> tuple[torch.Tensor, torch.Tensor]:
    dh = q.shape[-1] // n_heads
    q = q.reshape(q.shape[0], n_heads, dh)
    k = k.reshape(k.shape[0], n_kv, dh).repeat_interleave(n_heads // n_kv, dim=1)
    return q, k


def last_attention(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The model's last self-attention module exposing its query/key projections (``q_proj``/``k_proj``, as in
    Llama, Mistral, Qwen, SmolLM2; or GPT-2's fused ``c_attn``); None when there is none."""
    found = None
    for name, mod in model.named_modules():
        if hasattr(mod, "q_proj") and hasattr(mod, "k_proj"):
            found = (name, mod)
        elif hasattr(mod, "c_attn") and "attention" in type(mod).__name__.lower():
            found = (name, mod)
    return found


def random_projection(hidden: int, seed: int) -> Projection:
    """A fixed seeded random orthogonal ``W`` used as both W_Q and W_K (one head): ``q . u = v_i . v_k``, the
    similarity the graph needs (two independent random rotations would compare nothing)."""
    g = torch.Generator().manual_seed(seed)
    w, _ = torch.linalg.qr(torch.randn(hidden, hidden, generator=g, dtype=torch.float64))
    w = w.float()

    def project(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = v.float().cpu() @ w.T
        return x.unsqueeze(1), x.unsqueeze(1)

    return Projection(project, "random")


def attention_projection(model: nn.Module) -> Projection | None:
    """W_Q/W_K of the student's last attention layer, called without gradient on the features."""
    found = last_attention(model)
    if found is None:
        return None
    name, mod = found
    config = getattr(model, "config", None)

    def project(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ref = next(p for p in mod.parameters())
        x = v.detach().to(ref.device, ref.dtype)
        with torch.no_grad():
            if hasattr(mod, "q_proj"):
                q, k = mod.q_proj(x), mod.k_proj(x)
            else:
                q, k, _ = mod.c_attn(x).split(x.shape[-1], dim=-1)
        n, kv = _heads(config, q.shape[-1], k.shape[-1])
        return _split(q.float().cpu(), k.float().cpu(), n, kv)

    return Projection(project, f"attention:{name}")


def consensus(v: torch.Tensor, projection: Projection) -> torch.Tensor:
    """S_cons over a question's rationales: ``A = softmax_row(q u^T / sqrt(d))`` per head with the diagonal masked,
    averaged over heads; ``S_cons,k = sum_{i != k} A_ik`` (how much the others attend to k). Fewer than two
    rationales: neutral (zeros)."""
    n = v.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=torch.float64)
    q, u = projection.project(v)  # [n, h, dh]
    scores = torch.einsum("ihd,khd->hik", q.double(), u.double()) / math.sqrt(q.shape[-1])
    eye = torch.eye(n, dtype=torch.bool).unsqueeze(0)
    attn = torch.softmax(scores.masked_fill(eye, -math.inf), dim=-1).mean(0)  # [n, n], rows sum to 1
    return attn.sum(0)


def information_gain(h: torch.Tensor, a: torch.Tensor, mask: torch.Tensor, estimator: str = "cosine") -> float:
    """S_MI of one rationale: ``I_t`` = cos(h_t, a) (or the normalised linear-kernel HSIC of h_t and a, the hidden
    coordinates as samples: the squared centred correlation), ``dI_t = I_t - I_{t-1}``, and
    ``sum_t M_t ReLU(dI_t) / max(1, sum_t M_t)`` over t >= 1; NaN when the rationale has fewer than two tokens."""
    if h.shape[0] < 2:
        return math.nan
    h, a = h.double(), a.double()
    if estimator == "hsic":
        hc, ac = h - h.mean(-1, keepdim=True), a - a.mean()
        i = (hc @ ac) ** 2 / (hc.pow(2).sum(-1) * ac.pow(2).sum()).clamp_min(1e-12)
    else:
        i = nn.functional.cosine_similarity(h, a.unsqueeze(0).expand_as(h), dim=-1, eps=1e-8)
    gain = torch.relu(i[1:] - i[:-1])
    m = mask[1:].to(gain.dtype)
    return float((gain * m).sum() / m.sum().clamp_min(1.0))


def symmetric_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """``0.5 * (KL(P||Q) + KL(Q||P))`` of two answer distributions ``[m, V]`` (log-probabilities), mean over the
    answer's tokens (the common length when the two tokenisations differ)."""
    m = min(logp.shape[0], logq.shape[0])
    lp, lq = logp[:m], logq[:m]
    kl_pq = (lp.exp() * (lp - lq)).sum(-1)
    kl_qp = (lq.exp() * (lq - lp)).sum(-1)
    return 0.5 * (kl_pq + kl_qp).mean()


def mcon(answers: Sequence[torch.Tensor | None], zero: torch.Tensor) -> list[torch.Tensor]:
    """L_MCon,k for a question's branches: the symmetric KL (:func:`symmetric_kl`) between branch k's answer
    distribution and each other branch's, averaged over the others that have one; ``zero`` for a branch without
    one or without partners. All pairs at once: ``KL(i||j) = sum p_i log p_i - sum p_i log p_j`` per token, over
    the answer's first ``m`` tokens (``m`` the shortest tokenisation among the question's branches)."""
    have = [k for k, a in enumerate(answers) if a is not None]
    out = [zero] * len(answers)
    if len(have) < 2:
        return out
    m = min(answers[k].shape[0] for k in have)  # type: ignore[union-attr]
    lp = torch.stack([answers[k][:m] for k in have]).double()  # [n, m, V]; float64: no cancellation noise
    p = lp.exp()
    self_term = (p * lp).sum(-1)  # [n, m]
    cross = torch.einsum("imv,jmv->ijm", p, lp)  # sum_v p_i log p_j
    kl = self_term.unsqueeze(1) - cross  # [i, j, m]: KL(P_i || P_j)
    sym = (0.5 * (kl + kl.transpose(0, 1))).mean(-1)  # [n, n]
    n = len(have)
    off = ~torch.eye(n, dtype=torch.bool, device=sym.device)
    per = (sym * off).sum(1) / (n - 1)
    for i, k in enumerate(have):
        out[k] = per[i].to(zero.dtype)
    return out
