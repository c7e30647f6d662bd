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


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a ``.safetensors`` file (truncated, not safetensors), read from its header alone; None
    when its size matches what the header declares. Cheap: a truncated download is found before any load."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > min(size - 8, 100_000_000):
                return f"not a complete safetensors file ({size} bytes)"
            header = json.loads(f.read(n))
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    except ValueError:
        return "not a safetensors file (its header is not JSON)"
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    need = 8 + n + max(ends, default=0)
    if size < need:
        return f"truncated: {size} bytes, its header describes {need}"
    return None


def check_weights(path: Path, what: str) -> None:
    """Raise a one-line error naming the file when a ``.safetensors`` file of directory ``path`` is damaged."""
    for f in sorted(Path(path).glob("*.safetensors")):
        problem = safetensors_problem(f)
        if problem:
            raise CotdistillError(f"{f}: {what}: {problem}")


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
    check_weights(path, "cannot load the student")
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
