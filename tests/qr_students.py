"""Tiny config-built students with real (small, trained-here) BPE tokenizers, for QR-Distill's unit tests.

A minimal ``StudentHandle`` and collation, independent of the shared loop, so the method's parts are tested alone.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cotdistill.records import Question, ReasoningPath
from cotdistill.training.methods.base import Batch, Example, StudentHandle, StudentInputs, StudentOutput

STYLES = ["vanilla", "cot", "program"]


def corpus() -> list[str]:
    """Questions and hand-written paths in three styles."""
    out = []
    for a in range(2, 14):
        for b in range(1, 5):
            out.append(f"What is {a} plus {b}?")
            out.append(f"{a} + {b} = {a + b}. The answer is {a + b}.")
            out.append(f"First take {a}. Then add {b}. So we get {a + b}. The answer is {a + b}.")
            out.append(f"x = {a} + {b}\nprint(x)  # {a + b}\nThe answer is {a + b}.")
    return out


def make_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the toy corpus, with EOS/PAD specials (trained once per size per process)."""
    return copy.deepcopy(_tokenizer(vocab_size))


@lru_cache(maxsize=8)
def _tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(), trainer)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def make_model(kind: str, tokenizer: PreTrainedTokenizerFast, seed: int = 0, d: int = 32) -> torch.nn.Module:
    torch.manual_seed(seed)
    v = len(tokenizer)
    ids = {
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if kind == "gpt2":
        cfg = GPT2Config(
            vocab_size=v,
            n_positions=128,
            n_layer=1,
            n_head=2,
            n_embd=d,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
        )
        return GPT2LMHeadModel(cfg)
    cfg = LlamaConfig(
        vocab_size=v,
        hidden_size=d,
        intermediate_size=2 * d,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **ids,
    )
    return LlamaForCausalLM(cfg)


class TinyStudent(StudentHandle):
    """Response-token CE (labels shifted inside), mean-pooled last hidden state over response tokens."""

    def __init__(self, name: str, model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer

    def forward(self, inputs: StudentInputs, hidden: bool = False) -> StudentOutput:
        out = self.model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask, output_hidden_states=hidden)
        logits = out.logits
        shift_logits = logits[:, :-1].float()
        shift_labels = inputs.labels[:, 1:]
        tok = F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(shift_labels.shape)
        valid = (shift_labels != -100).float()
        loss = (tok * valid).sum(1) / valid.sum(1).clamp(min=1)
        token_loss = torch.zeros_like(inputs.labels, dtype=tok.dtype)
        token_loss[:, 1:] = tok * valid
        pooled = None
        if hidden:
            h = out.hidden_states[-1]
            m = (inputs.labels != -100).float()[..., None]
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return StudentOutput(loss=loss, logits=logits, token_loss=token_loss, hidden=pooled)


def collate(tokenizer: PreTrainedTokenizerFast, examples: list[Example]) -> StudentInputs:
    """prompt + newline + target + EOS, labels on the target and EOS, right-padded."""
    ids, labels = [], []
    for ex in examples:
        p = tokenizer(ex.prompt + "\n", add_special_tokens=False)["input_ids"]
        t = tokenizer(ex.target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids.append(p + t)
        labels.append([-100] * len(p) + t)
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id
    return StudentInputs(
        input_ids=torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
        attention_mask=torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
        labels=torch.tensor([x + [-100] * (width - len(x)) for x in labels]),
    )


def toy_data(n_questions: int = 6) -> tuple[dict[str, Question], list[ReasoningPath]]:
    """Questions with one path per style; the program-style path of every third question is marked not kept."""
    questions, paths = {}, []
    for i in range(n_questions):
        a, b = 3 + i, 1 + i % 3
        q = Question(id=f"q{i}", task="math", question=f"What is {a} plus {b}?", gold=str(a + b))
        questions[q.id] = q
        texts = {
            "vanilla": f"{a} + {b} = {a + b}. The answer is {a + b}.",
            "cot": f"First take {a}. Then add {b}. So we get {a + b}. The answer is {a + b}.",
            "program": f"x = {a} + {b}\nprint(x)  # {a + b}\nThe answer is {a + b}.",
        }
        for style, text in texts.items():
            kept = not (style == "program" and i % 3 == 0)
            paths.append(
                ReasoningPath(
                    id=f"q{i}|t|{style}|0",
                    question_id=q.id,
                    teacher="t",
                    style=style,
                    text=text,
                    answer=str(a + b),
                    checks={"kept": kept},
                )
            )
    return questions, paths


def make_batch(students: list[TinyStudent], examples: list[Example]) -> Batch:
    return Batch(examples=examples, inputs={s.name: collate(s.tokenizer, examples) for s in students})


PLANTED = ("cot", "program")  # student 0 is warmed up on cot, student 1 on program; vanilla is neutral


def planted_data(n_questions: int = 36) -> tuple[dict[str, Question], list[ReasoningPath]]:
    """Questions ``What is a plus b?`` with one path per style (vanilla, cot, program), all kept."""
    questions, paths = {}, []
    for i in range(n_questions):
        a, b = 2 + i % 12, 1 + i // 12
        q = Question(id=f"p{i}", task="math", question=f"What is {a} plus {b}?", gold=str(a + b))
        questions[q.id] = q
        texts = {
            "vanilla": f"{a} + {b} = {a + b}. The answer is {a + b}.",
            "cot": f"First take {a}. Then add {b}. So we get {a + b}. The answer is {a + b}.",
            "program": f"x = {a} + {b}\nprint(x)  # {a + b}\nThe answer is {a + b}.",
        }
        for style, text in texts.items():
            paths.append(ReasoningPath(id=f"p{i}|t|{style}|0", question_id=q.id, teacher="t", style=style, text=text,
                                       answer=str(a + b), checks={"kept": True}))  # fmt: skip
    return questions, paths


def warm_up(student: TinyStudent, examples: list[Example], steps: int = 40, lr: float = 3e-3, seed: int = 0) -> None:
    """Plain SFT of one student on ``examples`` (its planted style), seeded batches of 12."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(student.model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randperm(len(examples), generator=gen)[:12].tolist()
        loss = student.forward(collate(student.tokenizer, [examples[i] for i in idx])).loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def warmed_planted_pair() -> tuple[dict[str, Question], list[ReasoningPath], list[TinyStudent]]:
    """The planted pair: a tiny gpt2 warmed up on cot paths and a tiny llama on program paths (seeded), with the
    planted data they were warmed up on."""
    torch.manual_seed(0)
    questions, paths = planted_data()
    students = []
    for i, kind in enumerate(["gpt2", "llama"]):
        tok = make_tokenizer(300 + 40 * i)
        students.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=i, d=32), tok))
    for st, style in zip(students, PLANTED, strict=True):
        own = [Example(questions[p.question_id], questions[p.question_id].question, p.text, path=p)
               for p in paths if p.style == style]  # fmt: skip
        warm_up(st, own, seed=0)
    return questions, paths, students


def run_method(method, students: list[TinyStudent], examples: list[Example], epochs: int, batch_size: int = 12,
               student_lr: float = 1e-3, seed: int = 0) -> list[dict]:  # fmt: skip
    """A miniature of the shared loop: AdamW with the students at ``student_lr`` and the method's modules at its
    ``module_lr``, seeded shuffled batches, ``on_epoch_end`` each epoch. Returns every ``routing_rates`` record."""
    from cotdistill.training.methods.base import StepInfo

    groups = [{"params": list(s.model.parameters()), "lr": student_lr} for s in students]
    mparams = [p for m in method.modules().values() for p in m.parameters() if p.requires_grad]
    if mparams:
        groups.append({"params": mparams, "lr": method.module_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    step, out = 0, []
    for epoch in range(epochs):
        order = torch.randperm(len(examples), generator=gen).tolist()
        for i in range(0, len(order), batch_size):
            batch = make_batch(students, [examples[j] for j in order[i : i + batch_size]])
            res = method.compute(batch, StepInfo(step=step, epoch=epoch, total_steps=0))
            opt.zero_grad()
            res.losses["total"].backward()
            opt.step()
            step += 1
        out += method.on_epoch_end(epoch).get("routing_rates", [])
    return out
