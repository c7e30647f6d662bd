"""QR-Distill's ``train.options`` (METHODS.md §1): ablation switches, loss weights, router and peer settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cotdistill.training.methods.registry import MethodOptions


class QROptions(MethodOptions):
    """QR-Distill's settings in ``train.options`` (METHODS.md §1; the ablations are switches)."""

    filter: bool = Field(True, description="train on kept paths only; false = ablation 'w/o QF' (all paths)")
    routing: bool = Field(True, description="learned routing; false = ablation 'w/o Route' (every path, every student)")
    peer: bool = Field(True, description="cooperative peer teaching; false = ablation 'w/o Collab' (lambda2 = 0)")
    peer_mode: Literal["hidden", "logits"] = Field(
        "hidden", description="hidden: pooled states in a shared space; logits: token KL (shared tokenizer only)"
    )
    lambda1: float = Field(0.01, ge=0, description="weight of the (maximised) routing entropy H(gbar)")
    lambda2: float = Field(0.1, ge=0, description="weight of the peer loss L_mutual")
    tau: float = Field(1.0, gt=0, description="Gumbel-sigmoid temperature of the gates")
    fallback: bool = Field(True, description="a path no gate opened for goes to its top-logit student")
    competence_weight: float = Field(1.0, ge=0, description="weight of the competence regressors' auxiliary CE")
    competence_temperature: float = Field(1.0, gt=0, description="T in the target softmax_s(-CE_s / T)")
    shared_dim: int = Field(128, ge=1, description="dimension of the shared space of the fixed projections")
    encoder: str = Field("minilm", description="router encoder: 'minilm' (offline) or a sentence-transformers dir")
    log_routing: bool = Field(True, description="write every routing decision to logs/routing.jsonl")
    closed_loss: Literal["forward", "cached"] = Field(
        "forward",
        description="the router's view of a student's loss on a path it did not take: 'forward' (exact, a no-grad "
        "forward) or 'cached' (the student's last loss on that path, else its batch mean: no extra forward)",
    )
    module_lr: float = Field(
        1e-4,
        gt=0,
        description="learning rate of the router and the competence regressors (the method's own modules)",
    )
