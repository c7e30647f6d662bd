"""A tiny student and synthetic multi-teacher data for COMPACT's tests (no downloads: a BPE trained here)."""

from __future__ import annotations

import random

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from tokenizers import decoders as tk_decoders
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from cotdistill.records import Question, ReasoningPath
from cotdistill.students.encoding import collate as collate_encoded
from cotdistill.students.encoding import encode
from cotdistill.training.methods.base import Batch, Example
from cotdistill.training.student import Student


def synthetic_data(
    n_questions: int, teachers: dict[str, int], seed: int = 0
) -> tuple[dict[str, Question], list[ReasoningPath]]:
    """Arithmetic questions; each teacher writes ``teachers[name]`` paths per question ending "The answer is N."."""
    rng = random.Random(seed)
    questions, paths = {}, []
    for i in range(n_questions):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        q = Question(
            id=f"q{i}", task="math", question=f"Tom has {a} apples and gets {b} more. How many?", gold=str(a + b)
        )
        questions[q.id] = q
        for t, n in teachers.items():
            for s in range(n):
                text = f"Tom starts with {a}. He gets {b} more, so {a} + {b} = {a + b}.\nThe answer is {a + b}."
                if s % 2:
                    text = f"{a} + {b} = {a + b} apples in all.\nThe answer is {a + b}."
                paths.append(
                    ReasoningPath(
                        id=f"{q.id}|{t}|cot|{s}",
                        question_id=q.id,
                        teacher=t,
                        style="cot",
                        sample=s,
                        text=text,
                        checks={"kept": True},
                    )
                )
    return questions, paths


def train_tokenizer(texts: list[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``texts`` (offsets mapping included), with an EOS/pad token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk_decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|eos|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|eos|>")


def HFStudent(model: torch.nn.Module, tokenizer, name: str = "s0") -> Student:  # noqa: N802
    """Any HF causal LM as the loop's own ``Student`` (CPU, fp32, full fine-tuning)."""
    model.train()
    return Student(name, model, tokenizer, torch.device("cpu"), False, False)


def TinyStudent(tokenizer: PreTrainedTokenizerFast, seed: int = 0, name: str = "s0") -> Student:  # noqa: N802
    """A 2-layer GPT-2 (no dropout, so runs compare exactly) with the given tokenizer."""
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=2,
        n_head=2,
        n_embd=64,
        n_positions=256,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return HFStudent(GPT2LMHeadModel(cfg), tokenizer, name)


def collate(examples: list[Example], student: HFStudent) -> Batch:
    """The loop's own tokenisation and padding (``training/collate.py``) for one student."""
    tok = student.tokenizer
    items = [encode(tok, ex.prompt, ex.target) for ex in examples]
    return Batch(examples=examples, inputs={student.name: collate_encoded(items, tok.pad_token_id)})


def question_batches(examples: list[Example], questions_per_batch: int) -> list[list[Example]]:
    """Question-major batches: all of a question's examples together, ``questions_per_batch`` questions each."""
    order: list[str] = []
    by_q: dict[str, list[Example]] = {}
    for ex in examples:
        if ex.question.id not in by_q:
            order.append(ex.question.id)
            by_q[ex.question.id] = []
        by_q[ex.question.id].append(ex)
    return [
        [ex for qid in order[i : i + questions_per_batch] for ex in by_q[qid]]
        for i in range(0, len(order), questions_per_batch)
    ]
