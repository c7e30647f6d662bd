"""The one batched generator of the package: the dev check, evaluation and the ``hf`` teacher backend all decode
through :func:`generate`, with one EOS rule and one prompt encoding
(:func:`~cotdistill.students.encoding.rendered_ids`).

Prompts are already rendered (a student's :func:`~cotdistill.students.prompt.render_prompt`, a teacher's chat
template); they are left-padded into batches (longest first unless ``sort_by_length`` is off) and decoded greedily
(``temperature`` 0) or by seeded sampling. A sequence stops at any EOS id (the tokenizer's and the generation
config's); the text excludes the prompt, the EOS and special tokens.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.errors import CotdistillError
from cotdistill.students.calculator import decode_with_calculator, equals_ids
from cotdistill.students.encoding import rendered_ids


@dataclass
class Generation:
    """One generation: decoded text (EOS and after dropped), tokens generated (EOS and calculator results
    included), whether EOS came, mean token log-prob of the model's own greedy tokens (NaN when sampled), the
    prompt's token count and how many results the calculator wrote (:mod:`cotdistill.students.calculator`)."""

    text: str
    n_tokens: int
    hit_eos: bool
    mean_logprob: float
    prompt_tokens: int = 0
    calculator_calls: int = 0


class _LogprobRecorder:
    """A logits processor that leaves scores unchanged and records the log-prob of the greedy (argmax) token."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(torch.log_softmax(scores.float(), dim=-1).max(dim=-1).values.cpu())
        return scores


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a generation: the tokenizer's EOS and the model's generation-config EOS id(s)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gc_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gc_eos, int):
        ids.add(gc_eos)
    elif isinstance(gc_eos, list | tuple):
        ids.update(int(i) for i in gc_eos)
    if not ids:
        raise CotdistillError("the model's tokenizer has no EOS token: cannot tell where a generation stops")
    return sorted(ids)


def _check_context(model: Any, longest_prompt: int, max_new_tokens: int) -> None:
    """A model with learned absolute positions (GPT-2's ``n_positions``) cannot read past them: say so in one line
    instead of failing inside the embedding."""
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    if isinstance(limit, int) and longest_prompt + max_new_tokens > limit:
        raise CotdistillError(
            f"a prompt of {longest_prompt} tokens plus {max_new_tokens} new tokens exceeds the model's {limit} "
            "positions: lower the generation budget (eval.max_new_tokens) or use a shorter prompt (prompt: bare)"
        )


def _gen_config(eos: list[int], pad: int, max_new_tokens: int, temperature: float, top_p: float) -> Any:
    from transformers import GenerationConfig

    sample = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=None,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        eos_token_id=eos,
        pad_token_id=pad,
    )


def _left_pad(encoded: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):  # left padding: every prompt ends where generation starts
        ids[row, width - len(e) :] = torch.tensor(e, dtype=torch.long)
        mask[row, width - len(e) :] = 1
    return ids, mask


def _decode_row(
    tokenizer: Any, toks: torch.Tensor, lp: torch.Tensor | None, eos_t: torch.Tensor, n_prompt: int
) -> Generation:
    is_eos = torch.isin(toks, eos_t)
    hit = bool(is_eos.any())
    n = int(is_eos.nonzero()[0, 0]) + 1 if hit else len(toks)
    text = tokenizer.decode(toks[: n - 1 if hit else n], skip_special_tokens=True)
    if lp is None:  # sampled: the recorder (greedy only) was not run
        mean_lp = math.nan
    else:
        mean_lp = float(lp[:n].mean()) if n > 0 else -math.inf
    return Generation(text=text, n_tokens=n, hit_eos=hit, mean_logprob=mean_lp, prompt_tokens=n_prompt)


class _Caller:
    """One ``model.generate`` call on left-padded token lists: new tokens per row and, when greedy, their log-probs."""

    def __init__(self, model: Any, cfg: Any, pad: int, device: torch.device, autocast: Any, greedy: bool):
        self.model, self.cfg, self.pad = model, cfg, pad
        self.device, self.autocast, self.greedy = device, autocast, greedy

    def _config(self, max_new_tokens: int) -> Any:
        if max_new_tokens == self.cfg.max_new_tokens:
            return self.cfg
        cfg = copy.deepcopy(self.cfg)
        cfg.max_new_tokens = max_new_tokens
        return cfg

    def __call__(
        self, seqs: list[list[int]], max_new_tokens: int, stop: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        ids, mask = _left_pad(seqs, self.pad)
        rec = _LogprobRecorder() if self.greedy else None
        with self.autocast:
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=self._config(max_new_tokens),
                logits_processor=LogitsProcessorList([rec] if rec is not None else []),
                stopping_criteria=StoppingCriteriaList([stop] if stop is not None else []),
            )
        new = out[:, ids.shape[1] :].cpu()
        if rec is None:
            return new, None
        return new, torch.stack(rec.steps, dim=1) if rec.steps else torch.zeros(len(seqs), 0)


def _calculated(
    call: _Caller, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int, eos: list[int], eq_ids: torch.Tensor
) -> list[Generation]:
    """A batch decoded with the calculator (:func:`~cotdistill.students.calculator.decode_with_calculator`)."""
    rows = decode_with_calculator(call, tokenizer, prompts, max_new_tokens, set(eos), eq_ids)
    out = []
    for r in rows:
        text = tokenizer.decode(r.tokens[:-1] if r.hit_eos else r.tokens, skip_special_tokens=True)
        mean_lp = (sum(r.logprobs) / len(r.logprobs) if r.logprobs else -math.inf) if call.greedy else math.nan
        out.append(Generation(text, len(r.tokens), r.hit_eos, mean_lp, len(r.prompt), r.calls))
    return out


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 32,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seeds: Sequence[int] | None = None,
    sort_by_length: bool = True,
    bf16: bool = False,
    on_batch: Callable[[list[int], list[Generation]], None] | None = None,
    calculator: bool = False,
) -> list[Generation]:
    """Generate a continuation of every rendered prompt, returned in input order.

    ``seeds`` (sampling only) gives each batch the seed of its first prompt, so a batch's samples depend only on
    its prompts. ``bf16`` runs the forward passes under bf16 autocast. ``on_batch(indices, generations)`` is called
    after each batch (progress bars, streaming writers). ``calculator`` writes the result of every arithmetic
    expression a sequence ends with ``=`` (:mod:`cotdistill.students.calculator`).
    """
    was_training = model.training
    model.eval()
    eos = eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    device = next(model.parameters()).device
    cfg = _gen_config(eos, pad, max_new_tokens, temperature, top_p)
    encoded = [rendered_ids(tokenizer, p) for p in prompts]
    _check_context(model, max((len(e) for e in encoded), default=0), max_new_tokens)
    order = list(range(len(prompts)))
    if sort_by_length:
        order.sort(key=lambda i: -len(encoded[i]))
    results: list[Generation | None] = [None] * len(prompts)
    eos_t = torch.tensor(eos)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    call = _Caller(model, cfg, pad, device, autocast, greedy=temperature == 0)
    eq_ids = equals_ids(tokenizer) if calculator else None  # once per call: it reads the whole vocabulary
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if seeds is not None and temperature > 0:
                torch.manual_seed(int(seeds[idx[0]]))
            if eq_ids is not None:
                batch = _calculated(call, tokenizer, [encoded[i] for i in idx], max_new_tokens, eos, eq_ids)
            else:
                new, lp = call([encoded[i] for i in idx], max_new_tokens)
                batch = [
                    _decode_row(tokenizer, new[row], None if lp is None else lp[row], eos_t, len(encoded[i]))
                    for row, i in enumerate(idx)
                ]
            for i, g in zip(idx, batch, strict=True):
                results[i] = g
            if on_batch is not None:
                on_batch(idx, batch)
    finally:
        model.train(was_training)
    return [r for r in results if r is not None]
