"""QR-Distill's ``train.options`` (METHODS.md §1): ablation switches, loss weights, router and peer settings.

The router's defaults (``module_lr``, ``router_input``, ``router_signal``, ``router_baseline``, ``tau``) and the
competence temperature were chosen by measurement: ``benchmarks/bench_qr_router.py`` and
``benchmarks/bench_qr_peer.py`` (the numbers are in the README's QR-Distill section).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cotdistill.training.methods.registry import MethodOptions


class QROptions(MethodOptions):
    """QR-Distill's settings in ``train.options`` (METHODS.md §1; the ablations are switches)."""

    filter: bool = Field(
        True, description="train on kept paths only; false = ablation 'w/o QF' (every path, under train.max_paths)"
    )
    routing: bool | Literal["random"] = Field(
        True,
        description="true: learned routing; false = ablation 'w/o Route' (every path, every student); 'random': "
        "the control, the router frozen at its seeded initialisation (gates still sampled, nothing learned)",
    )
    peer: bool = Field(True, description="cooperative peer teaching; false = ablation 'w/o Collab' (lambda2 = 0)")
    peer_mode: Literal["hidden", "logits"] = Field(
        "hidden", description="hidden: pooled states in a shared space; logits: token KL (shared tokenizer only)"
    )
    projection: Literal["auto", "shared", "fitted", "random"] = Field(
        "auto",
        description="hidden mode's frozen maps to the shared space: shared (one seeded orthogonal matrix, equal "
        "hidden sizes), fitted (generalised CCA on a calibration batch), auto (shared when the hidden sizes match, "
        "else fitted), random (independent per student: identical students disagree; for comparison only)",
    )
    calibration_paths: int = Field(
        64,
        ge=2,
        description="paths (seeded, within train.max_length) of the calibration batch the peer maps are fitted on",
    )
    lambda1: float = Field(0.01, ge=0, description="weight of the (maximised) routing entropy H(gbar)")
    lambda2: float = Field(0.1, ge=0, description="weight of the peer loss L_mutual")
    tau: float = Field(1.0, gt=0, description="Gumbel-sigmoid temperature of the gates")
    fallback: bool = Field(
        True, description="a path no gate opened for goes to the student with the largest noisy score (logit + noise)"
    )
    router_input: Literal["standardized", "raw"] = Field(
        "standardized",
        description="the router's input: the path embeddings standardised per dimension over the training set, or "
        "raw (unit sentence vectors: coordinates of ~1/sqrt(d), which a default-initialised MLP barely sees)",
    )
    router_signal: Literal["zscore", "raw"] = Field(
        "zscore",
        description="the centred loss the router's gates see: divided by the student's batch std (zscore: every "
        "student on one scale) or not (raw)",
    )
    router_baseline: Literal["batch", "routed"] = Field(
        "batch",
        description="what a student's loss on a path is centred on: its mean over the batch (open the paths below "
        "its average) or over the paths it took (the exact derivative of the gated mean; shrinks each student's "
        "share towards its single easiest path)",
    )
    competence_weight: float = Field(1.0, ge=0, description="weight of the competence regressors' auxiliary CE")
    competence_temperature: float = Field(
        0.3,
        gt=0,
        description="T in the target softmax_s(-CE_s / T), CE_s the student's loss per byte of the path (a token is "
        "3-4 bytes: T = 0.3 per byte is about as sharp as the old T = 1 per token)",
    )
    shared_dim: int = Field(128, ge=1, description="dimension of the shared space of the frozen projections")
    encoder: str = Field("minilm", description="router encoder: 'minilm' (offline) or a sentence-transformers dir")
    log_routing: bool = Field(True, description="write every routing decision to logs/routing.jsonl")
    closed_loss: Literal["forward", "cached"] = Field(
        "forward",
        description="the router's view of a student's loss on a path it did not take: 'forward' (exact, a no-grad "
        "forward) or 'cached' (the student's last loss on that path, else its batch mean: no extra forward; per "
        "process, so not step-exact across processes; refused under train.engine fsdp)",
    )
    module_lr: float = Field(
        1e-3,
        gt=0,
        description="learning rate of the router and the competence regressors (the method's own modules)",
    )
