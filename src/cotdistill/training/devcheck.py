"""The dev check after each epoch: per student, the mean response CE on the dev split's kept paths (``loss``,
lower is better) or greedy accuracy on the dev questions (``accuracy``, measured exactly as ``cotdistill eval``
measures it). ``auto`` uses the loss when the dev split has kept paths."""

from __future__ import annotations

import torch

from cotdistill.config import RunConfig
from cotdistill.evaluation.answering import Answered, answer_questions, eval_bf16
from cotdistill.records import is_kept
from cotdistill.students.encoding import collate, encode, pad_id
from cotdistill.students.prompt import question_prompt
from cotdistill.training.data import TrainData
from cotdistill.training.methods.base import training_target
from cotdistill.training.student import Student


def dev_metric(setting: str, data: TrainData) -> str | None:
    """The metric the dev check uses (``loss`` / ``accuracy``), or None when the dev split cannot give it."""
    has_paths = any(is_kept(p) for p in data.dev_paths)
    metric = ("loss" if has_paths else "accuracy") if setting == "auto" else setting
    if (metric == "loss" and not has_paths) or (metric == "accuracy" and not data.dev_questions):
        return None
    return metric


@torch.no_grad()
def dev_loss(s: Student, data: TrainData, cfg: RunConfig) -> float:
    """Mean response CE of ``s`` over the dev split's kept paths (those within ``max_length`` tokens), prompts and
    targets built as for training."""
    max_length, batch_size = cfg.train.max_length, cfg.train.batch_size
    was = s.model.training
    s.model.eval()
    items = []
    for p in data.dev_paths:
        if not is_kept(p):
            continue
        q = data.dev_questions[p.question_id]
        target, _ = training_target(q, p.text, cfg.train.answer_sentence)
        e = encode(s.tokenizer, question_prompt(q, cfg.prompt), target)
        if len(e) <= max_length:
            items.append(e)
    total, n = 0.0, 0
    items.sort(key=len)
    try:
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            out = s.forward(collate(chunk, pad_id(s.tokenizer)))
            total += float(out.loss.sum())
            n += len(chunk)
    finally:
        s.model.train(was)
    return total / max(n, 1)


def dev_answers(s: Student, data: TrainData, cfg: RunConfig) -> list[Answered]:
    """``s``'s greedy answers to the dev questions, through the evaluation's own answering."""
    qs = list(data.dev_questions.values())
    tc = cfg.train
    bf16 = eval_bf16(cfg.eval.bf16, s.device)  # eval's precision, not training's: bf16 changes greedy answers
    return answer_questions(
        s.model, s.tokenizer, qs, tc.dev_max_new_tokens, tc.batch_size, cfg.prompt, bf16=bf16,
        calculator=cfg.eval.calculator,
    )  # fmt: skip


def dev_accuracy(s: Student, data: TrainData, cfg: RunConfig) -> float:
    """Greedy accuracy of ``s`` on the dev questions."""
    answered = dev_answers(s, data, cfg)
    return sum(a.correct for a in answered) / max(len(answered), 1)
