"""``train.options`` of the baselines (METHODS.md §3); QR-Distill's and COMPACT's live beside their methods."""

from __future__ import annotations

from pydantic import Field

from cotdistill.training.methods.registry import MethodOptions


class SFTMultiOptions(MethodOptions):
    """``sft-multi`` takes no options: every kept path of every teacher and style, uniform."""


class SFTSingleOptions(MethodOptions):
    """``sft-single``: one path per question, the first kept one matching ``teacher`` / ``style``."""

    teacher: str | None = Field(None, description="only paths of this teacher (default: any)")
    style: str | None = Field(None, description="only paths in this style (default: any)")


class StepByStepOptions(MethodOptions):
    """``step-by-step``: a rationale example and an answer example per path, ``L_answer + alpha * L_rationale``."""

    alpha: float = Field(1.0, ge=0, description="weight of the rationale loss")
    rationale_prefix: str = Field("", description="task prefix of the rationale examples' prompt")
    answer_prefix: str = Field("[answer] ", description="task prefix of the answer examples' prompt")
