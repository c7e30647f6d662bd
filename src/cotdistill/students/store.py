"""A trained student on disk: saved as a plain HF directory (LoRA merged by default), loaded back for evaluation.

``RUN/students/<name>/`` holds the final student and ``best/`` the best dev check; both load with
``AutoModelForCausalLM.from_pretrained`` and no cotdistill code (an unmerged LoRA student loads through peft).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cotdistill.errors import CotdistillError


def save_student(model: nn.Module, tokenizer: Any, out: Path, merge: bool = True) -> None:
    """Save a student as a plain HF directory (weights, config, tokenizer), atomically (temp dir + rename).

    LoRA students are merged into a copy of the base weights (``merge``) so ``transformers`` loads them with no
    cotdistill or peft code; ``merge=False`` saves the adapter instead (loads with peft installed). Sub-directories
    of an existing ``out`` (such as ``best/``) are kept.
    """
    from peft import PeftModel

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    m = model
    if isinstance(m, PeftModel) and merge:
        m = copy.deepcopy(m).merge_and_unload()
    m.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        for child in out.iterdir():
            if child.is_dir() and not child.name.startswith("."):
                os.replace(child, tmp / child.name)
        shutil.rmtree(out)
    os.replace(tmp, out)


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` holds a saved model (a plain HF directory or a peft adapter)."""
    return path.is_dir() and ((path / "config.json").exists() or (path / "adapter_config.json").exists())


def trained_dir(students_root: Path, name: str) -> Path | None:
    """Where trained student ``name`` lives: ``best/`` when it holds a model, else its directory; None if absent."""
    root = Path(students_root) / name
    for candidate in (root / "best", root):
        if is_model_dir(candidate):
            return candidate
    return None


def load_student(path: str | Path, device: torch.device | str = "cpu") -> tuple[Any, Any]:
    """A saved student (plain HF directory or peft adapter directory) and its tokenizer, in eval mode on ``device``.

    An adapter is merged into its base model for speed; the tokenizer comes from the student directory when it was
    saved there, else from the adapter's base model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        if (path / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            adapter_cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base = adapter_cfg.get("base_model_name_or_path")
            model = AutoPeftModelForCausalLM.from_pretrained(str(path)).merge_and_unload()
            tok_src = path if (path / "tokenizer_config.json").exists() or not base else Path(base)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path))
            tok_src = path
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CotdistillError(f"{path}: cannot load the student ({first})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_src))
    except (OSError, ValueError) as e:
        raise CotdistillError(f"{tok_src}: no usable tokenizer saved with the student ({e})") from None
    model.to(device)
    model.eval()
    return model, tokenizer
