"""The dev check after each epoch: per student, the mean response CE on the dev split's kept paths (``loss``,
lower is better) or greedy accuracy on the dev questions (``accuracy``, measured exactly as ``cotdistill eval``
measures it). ``auto`` uses the loss when the dev split has kept paths."""

from __future__ import annotations

import torch

from cotdistill.evaluation.answering import Answered, answer_questions
from cotdistill.records import is_kept
from cotdistill.students.encoding import collate, encode, pad_id
from cotdistill.tasks import get_family
from cotdistill.training.data import TrainData
from cotdistill.training.student import Student


def dev_metric(setting: str, data: TrainData) -> str | None:
    """The metric the dev check uses (``loss`` / ``accuracy``), or None when the dev split cannot give it."""
    has_paths = any(is_kept(p) for p in data.dev_paths)
    metric = ("loss" if has_paths else "accuracy") if setting == "auto" else setting
    if (metric == "loss" and not has_paths) or (metric == "accuracy" and not data.dev_questions):
        return None
    return metric


@torch.no_grad()
def dev_loss(s: Student, data: TrainData, max_length: int, batch_size: int) -> float:
    """Mean response CE of ``s`` over the dev split's kept paths (those within ``max_length`` tokens)."""
    was = s.model.training
    s.model.eval()
    items = []
    for p in data.dev_paths:
        if not is_kept(p):
            continue
        q = data.dev_questions[p.question_id]
        e = encode(s.tokenizer, get_family(q.task).student_prompt(q), p.text)
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


def dev_answers(s: Student, data: TrainData, max_new_tokens: int, batch_size: int) -> list[Answered]:
    """``s``'s greedy answers to the dev questions, through the evaluation's own answering."""
    qs = list(data.dev_questions.values())
    return answer_questions(s.model, s.tokenizer, qs, max_new_tokens, batch_size, bf16=s.bf16)


def dev_accuracy(s: Student, data: TrainData, max_new_tokens: int, batch_size: int) -> float:
    """Greedy accuracy of ``s`` on the dev questions."""
    answered = dev_answers(s, data, max_new_tokens, batch_size)
    return sum(a.correct for a in answered) / max(len(answered), 1)
