"""The paper variant's token plumbing (METHODS.md §2b-§2e): where each branch's tokens sit in the batch, the
per-question gold-answer representation ``a`` (one short no-grad pass), and each branch's answer distributions
``P_ans`` over the gold answer's tokens (from the training forward's logits; a branch that does not end in the
gold answer continues its own key/value cache with the answer sentence and gold: a few tokens, no second pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cotdistill.records import Question
from cotdistill.students.encoding import collate, encode, pad_id
from cotdistill.tasks import get_family
from cotdistill.training.methods.base import Batch, StudentHandle, StudentOutput
from cotdistill.training.methods.compact.sharded import stand_in_forward
from cotdistill.training.methods.compact.spans import TargetTokens, analyse_target, locate


@dataclass
class Branch:
    """One example of the batch (one rationale of one teacher): its row, tokens and their place in the row."""

    row: int
    qid: str
    teacher: str
    tokens: TargetTokens
    start: int | None  # batch position of the target's token 0 (None: the target is not found in the row)
    skip: int = 0  # leading target tokens that are not in the row as such (merged with the template's)

    def pos(self, j: int) -> int | None:
        """Batch position of target token ``j``; None when it is not in the row."""
        if self.start is None or j < self.skip or j >= len(self.tokens.ids):
            return None
        return self.start + j


class TokenCache:
    """Per-student caches of what never changes during training: each target's analysis, each gold row."""

    def __init__(self) -> None:
        self.targets: dict[tuple[str, str, str], TargetTokens] = {}
        self.gold: dict[tuple[str, str], tuple[Any, tuple[int, int] | None]] = {}

    def target(self, student: StudentHandle, text: str, q: Question) -> TargetTokens:
        key = (student.name, q.id, text)
        if key not in self.targets:
            self.targets[key] = analyse_target(student.tokenizer, text, q)
        return self.targets[key]


def _response(inputs: Any, row: int) -> tuple[int, list[int]]:
    """First response position of a row and its response token ids (labels != -100)."""
    pos = (inputs.labels[row] != -100).nonzero().flatten()
    if pos.numel() == 0:
        return 0, []
    r0, r1 = int(pos[0]), int(pos[-1]) + 1
    return r0, inputs.input_ids[row, r0:r1].tolist()


def batch_branches(student: StudentHandle, batch: Batch, cache: TokenCache) -> list[Branch]:
    """Every example of ``batch`` as a branch, its target located in its row."""
    inputs = batch.inputs[student.name]
    out = []
    for i, ex in enumerate(batch.examples):
        tt = cache.target(student, ex.target, ex.question)
        r0, resp = _response(inputs, i)
        found = locate(resp, tt.ids) if resp else None
        teacher = ex.path.teacher if ex.path is not None else "?"
        if found is None:
            out.append(Branch(i, ex.question.id, teacher, tt, None))
        else:
            out.append(Branch(i, ex.question.id, teacher, tt, r0 + found[0], found[1]))
    return out


def gold_vectors(
    student: StudentHandle, questions: Sequence[tuple[str, Question]], cache: TokenCache, sharded: bool = False
) -> dict[str, torch.Tensor]:
    """``a`` per question: the student's last-layer states over the gold answer in ``prompt + answer sentence``,
    mean-pooled, from one short no-grad eval-mode pass over the batch's questions (``sharded``: a stand-in pass
    when no question has one, so every process runs the pass)."""
    rows, spans, qids = [], [], []
    for prompt, q in questions:
        key = (student.name, q.id)
        if key not in cache.gold:
            fam = get_family(q.task)
            sentence = fam.format_answer(fam.canonical_gold(q.gold, q))
            enc = encode(student.tokenizer, prompt, sentence)
            tt = analyse_target(student.tokenizer, sentence, q)
            resp = enc.ids[enc.n_prompt :]
            found = locate(resp, tt.ids)
            span = None
            if tt.answer is not None and found is not None and tt.answer[0] >= found[1]:
                span = (enc.n_prompt + found[0] + tt.answer[0], enc.n_prompt + found[0] + tt.answer[1])
            cache.gold[key] = (enc, span)
        enc, span = cache.gold[key]
        if span is not None:
            rows.append(enc)
            spans.append(span)
            qids.append(q.id)
    if not rows and not sharded:
        return {}
    was_training = student.model.training
    student.model.eval()  # a measurement: no dropout noise, and the RNG stream stays that of plain SFT
    try:
        with torch.no_grad():
            if not rows:
                stand_in_forward(student, next(student.model.parameters()).device)
                return {}
            out = student.forward(collate(rows, pad_id(student.tokenizer)), states=True)
    finally:
        student.model.train(was_training)
    states = out.states.detach().float().cpu()
    return {qid: states[i, s:e].mean(0) for i, (qid, (s, e)) in enumerate(zip(qids, spans, strict=True))}


def _row_cache(cache: Any, row: int, length: int) -> Any:
    """The key/value cache of one batch row's first ``length`` positions (differentiable: it is the training
    forward's own keys and values)."""
    from transformers.cache_utils import DynamicCache

    layers = getattr(cache, "layers", None)
    if layers is not None:
        data = [(lay.keys[row : row + 1, :, :length], lay.values[row : row + 1, :, :length]) for lay in layers]
    else:  # a legacy tuple of (key, value) per layer
        data = [(k[row : row + 1, :, :length], v[row : row + 1, :, :length]) for k, v in cache]
    return DynamicCache(ddp_cache_data=data)


def _continue(student: StudentHandle, out: StudentOutput, b: Branch) -> torch.Tensor | None:
    """Logits predicting the closed text's tokens ``common+1 ..`` from the branch's own cache (train mode, with
    gradient): the rationale closed with the answer sentence and gold, without a second pass over the rationale."""
    tt = b.tokens
    assert tt.closed_ids is not None and tt.closed_answer is not None and b.start is not None
    new = tt.closed_ids[tt.common : tt.closed_answer[1] - 1]
    if not new:
        return None
    length = b.start + tt.common
    device = out.logits.device
    ids = torch.tensor([new], dtype=torch.long, device=device)
    mask = torch.ones((1, length + len(new)), dtype=torch.long, device=device)
    bf16 = bool(getattr(student, "bf16", False))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        res = student.model(
            input_ids=ids, attention_mask=mask, past_key_values=_row_cache(out.cache, b.row, length), use_cache=False
        )
    return res.logits[0]


def _plan(out: StudentOutput, b: Branch) -> list[tuple[int, int]] | None:
    """Where each of the branch's answer distributions comes from: ``(-1, position)`` for the training logits of
    its row, ``(k, j)`` for row j of continuation k (``k`` = 0 placeholder, fixed by the caller); None: no place."""
    tt = b.tokens
    if tt.answer is not None:
        pos = [b.pos(j - 1) for j in range(*tt.answer)]
        return None if not pos or any(p is None for p in pos) else [(-1, p) for p in pos]
    if tt.closed_ids is None or tt.closed_answer is None or b.start is None or tt.common <= b.skip:
        return None
    if out.cache is None or b.start + tt.common > out.logits.shape[1]:
        return None
    plan = []
    for m in range(*tt.closed_answer):
        p = b.pos(m - 1) if m - 1 < tt.common else None
        if m - 1 < tt.common and p is None:
            return None
        plan.append((-1, p) if p is not None else (0, m - 1 - tt.common))
    return plan


def continuations(out: StudentOutput, branches: list[Branch]) -> int:
    """How many continuation forwards :func:`answer_logprobs` runs for ``branches``."""
    n = 0
    for b in branches:
        plan = _plan(out, b)
        if plan is not None and any(k >= 0 for k, _ in plan):
            tt = b.tokens
            assert tt.closed_ids is not None and tt.closed_answer is not None
            n += bool(tt.closed_ids[tt.common : tt.closed_answer[1] - 1])  # what _continue feeds
    return n


def answer_logprobs(student: StudentHandle, out: StudentOutput, branches: list[Branch]) -> list[torch.Tensor | None]:
    """``log P_ans`` per branch, ``[m, V]``: the student's next-token distributions at the gold answer's m tokens
    after the branch's rationale (None when the gold answer cannot be placed after it). The training logits are
    gathered in one indexing op (one backward scatter for the whole batch, not one per branch)."""
    rows, poss, conts = [], [], []
    n_cont = 0
    index: list[list[tuple[bool, int]] | None] = []  # per branch: (from a continuation?, row in its part)
    for b in branches:
        plan = _plan(out, b)
        if plan is None:
            index.append(None)
            continue
        cont = _continue(student, out, b) if any(k >= 0 for k, _ in plan) else None
        here = []
        for k, p in plan:
            if k < 0:
                here.append((False, len(rows)))
                rows.append(b.row)
                poss.append(p)
            else:
                here.append((True, n_cont + p))
        if cont is not None:
            conts.append(cont)
            n_cont += cont.shape[0]
        index.append(here)
    if not rows and not conts:
        return [None] * len(branches)
    dev = out.logits.device
    parts = [out.logits[torch.tensor(rows, device=dev), torch.tensor(poss, device=dev)]] if rows else []
    logp = torch.log_softmax(torch.cat(parts + conts).float(), dim=-1)
    res: list[torch.Tensor | None] = []
    for here in index:
        if here is None:
            res.append(None)
            continue
        pick = [len(rows) + j if c else j for c, j in here]
        res.append(logp[torch.tensor(pick, device=dev)])
    return res
