"""QLoRA students: a local HF model loaded with 4-bit NF4 weights through bitsandbytes (double quantisation,
bf16 compute), prepared for k-bit training, LoRA added by the caller. Runs on CUDA and, with bitsandbytes' CPU
backend, on a CPU (tested there)."""

from __future__ import annotations

from typing import Any

import torch

from cotdistill.config import StudentConfig
from cotdistill.errors import ConfigError


def load_quantized(sc: StudentConfig, gradient_checkpointing: bool = False) -> tuple[Any, Any]:
    """Tokenizer and 4-bit model of ``sc`` (kind hf), ready for LoRA (``prepare_model_for_kbit_training``)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ConfigError(
            f"student '{sc.name}': quantization needs bitsandbytes (pip install bitsandbytes==0.50.2)"
        ) from None
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    q = sc.quantization
    assert q is not None
    bnb_cfg = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, q.compute_dtype),
    )
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        tok = AutoTokenizer.from_pretrained(sc.path)
        model = AutoModelForCausalLM.from_pretrained(sc.path, quantization_config=bnb_cfg, device_map={"": device})
    except (OSError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ConfigError(
            f"students: '{sc.name}': cannot load {sc.path} in 4-bit ({type(e).__name__}: {first})"
        ) from None
    for m in model.modules():
        # bitsandbytes' CPU inference path repacks 4-bit weights in place on AVX512-BF16 CPUs after an eval-mode
        # forward, and backward through a repacked layer then drops its LoRA gradients: keep the training layout
        if isinstance(m, bnb.nn.Linear4bit) and hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    return tok, model


def is_quantized(model: Any) -> bool:
    """Whether ``model`` holds bitsandbytes 4-bit layers (it must not be moved or merged)."""
    return bool(
        getattr(model, "is_loaded_in_4bit", False)
        or getattr(getattr(model, "base_model", None), "is_loaded_in_4bit", False)
    )
