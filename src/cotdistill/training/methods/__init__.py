"""Training methods: small classes on the shared loop (``base.py`` is the contract, ``registry.py`` the list).

Built-in methods register here with their options models; implementations load on first use.
"""

from cotdistill.training.methods.compact.options import CompactOptions
from cotdistill.training.methods.options import SFTMultiOptions, SFTSingleOptions, StepByStepOptions
from cotdistill.training.methods.qr_distill.options import QROptions
from cotdistill.training.methods.registry import (
    MethodOptions,
    MethodSpec,
    method_names,
    method_spec,
    register_method,
)

_HERE = "cotdistill.training.methods"
register_method("sft-single", SFTSingleOptions, f"{_HERE}.sft:SFTSingle", "one path per question (classic CoT SFT)")
register_method("sft-multi", SFTMultiOptions, f"{_HERE}.sft:SFTMulti", "every kept path, uniform (the union)")
register_method("step-by-step", StepByStepOptions, f"{_HERE}.sft:StepByStep", "Distilling Step-by-Step")
register_method("qr-distill", QROptions, f"{_HERE}.qr_distill.method:QRDistill", "QR-Distill (METHODS.md §1)")
register_method("compact", CompactOptions, f"{_HERE}.compact.method:CompactMethod", "COMPACT (METHODS.md §2)")

__all__ = ["MethodOptions", "MethodSpec", "method_names", "method_spec", "register_method"]
