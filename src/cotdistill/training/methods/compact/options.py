"""COMPACT's ``train.options`` (METHODS.md §2): the variant, its coefficients, switches and estimators.

``variant: paper`` (default) is METHODS.md §2a-§2e: student-space signals S_MI, S_cons, S_PPL fused per question,
and the consistency term L_MCon in each branch's loss. ``variant: v1`` is §2f (the earlier reading: C from the
filter's consensus graph, A as the answer's PMI, D). Options of the other variant are errors, so a v1 coefficient
set under the paper variant (or the reverse) never passes silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cotdistill.training.methods.registry import MethodOptions

V1_ONLY = ("lambda_c", "lambda_a", "lambda_d", "c_min", "a_clip", "use_c", "use_a", "use_d", "answer_prefix")
PAPER_ONLY = (
    "beta1", "beta2", "beta3", "lambda_mcon", "use_mi", "use_cons", "use_ppl", "use_mcon", "cons_projection",
    "cons_feature", "mi_estimator", "semantic_mask", "ppl_ema",
)  # fmt: skip


class CompactOptions(MethodOptions):
    """COMPACT's variant, coefficients and switches, read from ``train.options`` (every key in docs/config.md)."""

    variant: Literal["paper", "v1"] = Field(
        "paper",
        description="paper: METHODS.md §2a-§2e (student-space signals + L_MCon); v1: §2f (C, A, D; refused under "
        "train.engine fsdp)",
    )
    # -- shared ---------------------------------------------------------------------------------------------
    tau: float = Field(1.0, gt=0, description="softmax temperature of the fused scores")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="share of steps with uniform weights (warm-up)")
    ema_mu: float = Field(0.9, ge=0, lt=1, description="decay of the per-teacher difficulty EMA (v1; paper: ppl_ema)")
    unfiltered: bool = Field(False, description="true: train on every path, also those the filter rejected")
    # -- paper (§2b-§2e) ------------------------------------------------------------------------------------
    beta1: float = Field(1.0, ge=0, description="paper: weight of z(S_MI), the information-gain adaptability")
    beta2: float = Field(1.0, ge=0, description="paper: weight of z(S_cons), the student-space graph consensus")
    beta3: float = Field(1.0, ge=0, description="paper: weight of z(S_PPL), the difficulty (subtracted)")
    lambda_mcon: float = Field(
        0.1, ge=0, description="paper: lambda, weight of L_MCon in each branch loss L_k = L_SFT,k + lambda L_MCon,k"
    )
    use_mi: bool = Field(True, description="paper: false drops S_MI (and the per-question no-grad gold pass)")
    use_cons: bool = Field(True, description="paper: false drops S_cons")
    use_ppl: bool = Field(True, description="paper: false drops S_PPL")
    use_mcon: bool = Field(True, description="paper: false drops L_MCon (no answer distributions computed)")
    cons_projection: Literal["attention", "random"] = Field(
        "random",
        description="paper: W_Q/W_K of S_cons: one seeded random orthogonal matrix for both (default: measured to "
        "separate misleading rationales) or the student's last attention layer (no grad; it did not separate them; "
        "refused under train.engine fsdp)",
    )
    cons_feature: Literal["content", "last"] = Field(
        "content",
        description="paper: S_cons's feature v_k: the state at the rationale's last content token (the final answer, "
        "not its closing period) or at its literal last token",
    )
    mi_estimator: Literal["cosine", "hsic"] = Field(
        "cosine", description="paper: I_t = cos(h_t, a), or a normalised linear-kernel HSIC of h_t and a"
    )
    semantic_mask: bool = Field(
        True, description="paper: S_MI over content tokens only (false: every rationale token counts)"
    )
    ppl_ema: bool = Field(False, description="paper: smooth S_PPL with the per-teacher EMA, (D + EMA) / 2")
    # -- v1 (§2f) -------------------------------------------------------------------------------------------
    lambda_c: float = Field(1.0, ge=0, description="v1: weight of z(C); 0 also drops the c_min cut")
    lambda_a: float = Field(1.0, ge=0, description="v1: weight of z(A)")
    lambda_d: float = Field(1.0, ge=0, description="v1: weight of z(D*) (subtracted)")
    c_min: float = Field(0.2, ge=0, le=1, description="v1: teachers whose consensus C is below this get weight 0")
    a_clip: float = Field(5.0, gt=0, description="v1: adaptability A is clipped to [-a_clip, a_clip]")
    use_c: bool = Field(True, description="v1: false drops consensus (no z(C) term, no c_min cut)")
    use_a: bool = Field(True, description="v1: false drops adaptability (and the extra no-grad pass)")
    use_d: bool = Field(True, description="v1: false drops difficulty")
    answer_prefix: str = Field(
        "The answer is ", description="v1: text between prompt and gold answer in the no-grad pass for log p(y*|x)"
    )

    @model_validator(mode="after")
    def _variant_keys(self) -> CompactOptions:
        """An option of the other variant is an error (it would be ignored)."""
        other = PAPER_ONLY if self.variant == "v1" else V1_ONLY
        wrong = sorted(k for k in self.model_fields_set if k in other)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not an option of variant '{self.variant}'")
        return self
