"""COMPACT's ``train.options`` (METHODS.md §2): the fusion coefficients, warm-up, EMA and ablation switches."""

from __future__ import annotations

from pydantic import Field

from cotdistill.training.methods.registry import MethodOptions


class CompactOptions(MethodOptions):
    """COMPACT's coefficients and switches, read from ``train.options`` (every key documented in the README)."""

    lambda_c: float = Field(1.0, ge=0, description="weight of the consensus z-score z(C) in the fused score")
    lambda_a: float = Field(1.0, ge=0, description="weight of the adaptability z-score z(A) in the fused score")
    lambda_d: float = Field(1.0, ge=0, description="weight of the difficulty z-score z(D*) (subtracted)")
    tau: float = Field(1.0, gt=0, description="softmax temperature over a question's teachers")
    c_min: float = Field(0.2, ge=0, le=1, description="teachers whose consensus C is below this get weight 0")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="share of steps with uniform weights (warm-up)")
    ema_mu: float = Field(0.9, ge=0, lt=1, description="decay of the per-teacher difficulty EMA")
    a_clip: float = Field(5.0, gt=0, description="adaptability A is clipped to [-a_clip, a_clip]")
    use_c: bool = Field(True, description="false: ablation without consensus (no z(C) term, no c_min cut)")
    use_a: bool = Field(True, description="false: ablation without adaptability (and no extra no-grad pass)")
    use_d: bool = Field(True, description="false: ablation without difficulty")
    unfiltered: bool = Field(False, description="true: train on every path, also those the filter rejected")
    answer_prefix: str = Field(
        "The answer is ", description="text between prompt and gold answer in the no-grad pass for log p(y*|x)"
    )
