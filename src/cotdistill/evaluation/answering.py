"""A student answers questions: its prompt rendered as in training, greedy decoding through the one generator,
the answer extracted strictly from the generated text. The dev check and ``cotdistill eval`` both call
:func:`answer_questions`, so the checkpoint chosen on dev is measured exactly as it is reported."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.records import Question
from cotdistill.students.generate import Generation, generate
from cotdistill.students.prompt import question_prompt, render_prompt
from cotdistill.tasks import get_family


@dataclass
class Answered:
    """One question answered: the generation, the strictly extracted answer and whether it is right.

    ``truncated``: no EOS within the token budget and no answer could be extracted.
    """

    question: Question
    generation: Generation
    answer: str | None
    correct: bool

    @property
    def truncated(self) -> bool:
        return (not self.generation.hit_eos) and self.answer is None


def eval_bf16(setting: bool | str, device: torch.device) -> bool:
    """``eval.bf16``: ``auto`` is on for bf16-capable CUDA only. On CPU, AVX512-BF16 included, greedy decoding in
    bf16 measured slower than fp32 (benchmarks/bench_eval_bf16.py: autocast 0.59x, bf16 weights 0.88x)."""
    if setting != "auto":
        return bool(setting)
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def student_prompt(tokenizer: Any, q: Question, policy: str = "core") -> str:
    """The rendered text a student answers ``q`` from: the prompt policy's text in the student's chat template."""
    return render_prompt(tokenizer, question_prompt(q, policy))


def answer_questions(
    model: Any,
    tokenizer: Any,
    questions: Sequence[Question],
    max_new_tokens: int,
    batch_size: int = 32,
    policy: str = "core",
    bf16: bool = False,
    on_batch: Callable[[list[Generation]], None] | None = None,
    calculator: bool = False,
) -> list[Answered]:
    """Greedy answers of ``model`` to ``questions`` under the prompt ``policy``, in order; ``on_batch`` gets each
    batch's generations as it finishes (progress); ``calculator`` writes the results of arithmetic expressions."""
    prompts = [student_prompt(tokenizer, q, policy) for q in questions]
    gens = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens,
        batch_size,
        bf16=bf16,
        on_batch=None if on_batch is None else (lambda _, gens: on_batch(gens)),
        calculator=calculator,
    )
    out = []
    for q, g in zip(questions, gens, strict=True):
        fam = get_family(q.task)
        ans = fam.extract(g.text, q)
        out.append(Answered(q, g, ans, bool(fam.equivalent(ans, q.gold))))
    return out
