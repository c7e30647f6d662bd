"""COMPACT variant v1 (METHODS.md §2f, this project's first reading): per question and teacher, consensus ``C``
(``checks.consensus`` from the filter stage), adaptability ``A`` (answer-span log-prob from the training forward
pass minus ``log p(y*|x)`` from one short no-grad pass per question), difficulty ``D*`` (detached loss with a
per-teacher EMA, folded in once per optimizer step over all processes), fused into per-teacher weights ``w_k``.

Each teacher's weight is split over its branches on the question (the logged weight is its real share): branch
``b`` of teacher ``t`` on question ``q`` is multiplied by ``N_q * w_t / n_t`` and the batch takes the mean over
examples, so uniform weights with equal path counts per teacher give exactly the uniform union.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

from cotdistill.records import ReasoningPath
from cotdistill.students.encoding import collate_rows, pad_id, prompt_ids
from cotdistill.tasks import get_family
from cotdistill.tasks.base import marker_spans
from cotdistill.training.methods.base import Batch, Computed, Example, StepInfo, StudentHandle
from cotdistill.training.methods.compact.spans import answer_char_span, char_to_token_span
from cotdistill.training.methods.compact.weights import (
    adaptability,
    fuse,
    in_warmup,
    span_mean_logprob,
    split_over_branches,
    weight_entropy,
)

if TYPE_CHECKING:
    from cotdistill.training.methods.compact.method import CompactMethod


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _nanmean(xs: list[float]) -> float:
    vals = [x for x in xs if math.isfinite(x)]
    return sum(vals) / len(vals) if vals else math.nan


def consensus_of(path: ReasoningPath | None) -> float:
    """A path's consensus ``C`` from the filter stage; NaN (neutral: z = 0, never cut) when it has none."""
    if path is None:
        return math.nan
    c = path.checks.get("consensus")
    try:
        return float(c) if c is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def encode_scored(
    tokenizer: Any, prompt: str, target: str, score_span: tuple[int, int], max_length: int
) -> tuple[list[int], list[int], tuple[int, int] | None]:
    """Token ids of rendered ``prompt`` + ``target``, labels on the target, the token span of ``target[score_span]``."""
    p_ids = prompt_ids(tokenizer, prompt)
    enc = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
    span = char_to_token_span(enc["offset_mapping"], score_span)
    ids = list(p_ids) + list(enc["input_ids"])
    labels = [-100] * len(p_ids) + list(enc["input_ids"])
    if len(ids) > max_length:  # keep the end (the answer): drop from the left of the prompt
        cut = len(ids) - max_length
        ids, labels = ids[cut:], labels[cut:]
        shift = -cut
    else:
        shift = 0
    if span is None:
        return ids, labels, None
    s, e = span[0] + len(p_ids) + shift, span[1] + len(p_ids) + shift
    return ids, labels, ((s, e) if s >= 0 else None)


class V1:
    """The v1 scorer of a :class:`CompactMethod` (its options, students and EMA), with its span caches."""

    def __init__(self, method: CompactMethod) -> None:
        self.m = method
        self.cfg = method.cfg
        self.opts = method.opts
        self.students = method.students
        # (student, path id) -> (answer token start, end, answer-to-end token ids) in the target's own tokenisation
        self._spans: dict[tuple[str, str], tuple[int, int, list[int]] | None] = {}
        self._char_spans: dict[tuple[str, str], tuple[int, int] | None] = {}

    def _target_span(self, student: StudentHandle, ex: Example) -> tuple[int, int, list[int]] | None:
        """Token span ``[s, e)`` of the gold answer inside the target's own tokenisation (cached per path)."""
        key = (student.name, ex.path.id if ex.path is not None else ex.target)
        if key not in self._spans:
            span = None
            cs = self._char_span(ex)
            if cs is not None:
                enc = student.tokenizer(ex.target, add_special_tokens=False, return_offsets_mapping=True)
                ts = char_to_token_span(enc["offset_mapping"], cs)
                if ts is not None:
                    tail = list(enc["input_ids"][ts[0] :])
                    span = (ts[0], ts[1], tail)
            self._spans[key] = span
        return self._spans[key]

    def _batch_spans(self, student: StudentHandle, batch: Batch) -> list[tuple[int, int] | None]:
        """For each example, the positions of its answer tokens in the batch tensors (aligned from the end)."""
        inputs = batch.inputs[student.name]
        out: list[tuple[int, int] | None] = []
        for i, ex in enumerate(batch.examples):
            info = self._target_span(student, ex)
            if info is None:
                out.append(None)
                continue
            s, e, tail = info
            pos = (inputs.labels[i] != -100).nonzero().flatten()
            if pos.numel() == 0:
                out.append(None)
                continue
            # the answer-to-end tokens of the target, last occurrence inside the response (a chat template may
            # add end-of-turn tokens after it); not found: truncated or tokenised differently in context
            resp = inputs.input_ids[i, int(pos[0]) : int(pos[-1]) + 1].tolist()
            found = None
            for start in range(len(resp) - len(tail), -1, -1):
                if resp[start : start + len(tail)] == tail:
                    found = int(pos[0]) + start
                    break
            out.append(None if found is None else (found, found + (e - s)))
        return out

    def _no_grad_scores(
        self, student: StudentHandle, batch: Batch, missing: list[int]
    ) -> tuple[dict[str, float], dict[int, float]]:
        """One short no-grad pass: ``mean log p(y*|x)`` per question, and ``mean log p(y*|x, r)`` for the paths
        in ``missing`` (no gold answer span in the training pass: a wrong, missing or truncated final answer),
        scored on the rationale (up to its last answer marker) closed with ``answer_prefix`` + the gold answer."""
        rows: list[tuple[list[int], list[int]]] = []
        spans: list[tuple[int, int]] = []
        keys: list[tuple[str, str | int]] = []
        by_q: dict[str, list[Example]] = defaultdict(list)
        for ex in batch.examples:
            by_q[ex.question.id].append(ex)
        gold_of = {qid: self._gold_surface(exs) for qid, exs in by_q.items()}
        max_len = self.cfg.train.max_length

        def add(key: tuple[str, str | int], prompt: str, target: str, gold: str) -> None:
            ids, labels, span = encode_scored(
                student.tokenizer, prompt, target, (len(target) - len(gold), len(target)), max_len
            )
            if span is not None:
                rows.append((ids, labels))
                spans.append(span)
                keys.append(key)

        for qid, exs in by_q.items():
            add(("q", qid), exs[0].prompt, self.opts.answer_prefix + gold_of[qid], gold_of[qid])
        for i in missing:
            ex = batch.examples[i]
            marks = marker_spans(ex.target)
            body = ex.target[: marks[-1][0]] if marks else ex.target
            body = body.rstrip()
            target = (body + "\n" if body else "") + self.opts.answer_prefix + gold_of[ex.question.id]
            add(("p", i), ex.prompt, target, gold_of[ex.question.id])
        if not rows:
            return {}, {}
        # the short prior rows and the full-length counterfactual rows go in separate passes: padded together,
        # every short row would be padded to a whole path's length
        lp: dict[tuple[str, str | int], float] = {}
        for kind in ("q", "p"):
            idx = [j for j, k in enumerate(keys) if k[0] == kind]
            if idx:
                scores = self._score_rows(student, [rows[j] for j in idx], [spans[j] for j in idx])
                lp.update({keys[j]: v for j, v in zip(idx, scores, strict=True)})
        prior = {str(k[1]): v for k, v in lp.items() if k[0] == "q"}
        counterfactual = {int(k[1]): v for k, v in lp.items() if k[0] == "p"}
        return prior, counterfactual

    @staticmethod
    def _score_rows(
        student: StudentHandle, rows: list[tuple[list[int], list[int]]], spans: list[tuple[int, int]]
    ) -> list[float]:
        """Mean log-probability of each row's span, in one padded no-grad eval-mode forward."""
        device = next(student.model.parameters()).device
        inputs = collate_rows(rows, pad_id(student.tokenizer)).to(device)
        was_training = student.model.training
        student.model.eval()  # a measurement: no dropout noise, and the RNG stream stays that of plain SFT
        try:
            with torch.no_grad():
                out = student.forward(inputs)
        finally:
            student.model.train(was_training)
        return span_mean_logprob(out.token_loss.float().cpu(), spans).tolist()

    def _char_span(self, ex: Example) -> tuple[int, int] | None:
        """``answer_char_span`` of an example's target, cached (it is asked every epoch)."""
        key = (ex.question.id, ex.target)
        if key not in self._char_spans:
            self._char_spans[key] = answer_char_span(ex.target, ex.question)
        return self._char_spans[key]

    def _gold_surface(self, exs: list[Example]) -> str:
        """How the question's gold answer is written in its paths (the same text the answer span scores)."""
        for ex in exs:
            cs = self._char_span(ex)
            if cs is not None:
                return ex.target[cs[0] : cs[1]]
        q = exs[0].question
        return get_family(q.task).canonical_gold(q.gold, q)

    def _adaptability(self, student: StudentHandle, batch: Batch, token_loss: torch.Tensor) -> torch.Tensor:
        """A per example: the answer span's mean log-prob (training pass, else the closed rationale's) minus the
        question's ``log p(y*|x)``; NaN where the switch is off or no span is found."""
        if not self.opts.use_a:
            return torch.full((len(batch.examples),), math.nan, dtype=torch.float64)
        spans = self._batch_spans(student, batch)
        lp_with = span_mean_logprob(token_loss.float().cpu(), spans)
        prior, counterfactual = self._no_grad_scores(student, batch, [i for i, s in enumerate(spans) if s is None])
        for i, v in counterfactual.items():
            lp_with[i] = v
        lp_without = torch.tensor([prior.get(ex.question.id, math.nan) for ex in batch.examples], dtype=torch.float64)
        return adaptability(lp_with, lp_without, self.opts.a_clip)

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        """One batch of v1: per-teacher weights split over their branches, records and scalars."""
        student = self.students[0]
        out = student.forward(batch.inputs[student.name])
        losses = out.loss  # [B]
        b = len(batch.examples)
        d = losses.detach().double().cpu()
        o = self.opts
        a = self._adaptability(student, batch, out.token_loss)
        c = torch.tensor([consensus_of(ex.path) for ex in batch.examples], dtype=torch.float64)

        groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, ex in enumerate(batch.examples):
            teacher = ex.path.teacher if ex.path is not None else "?"
            groups[ex.question.id][teacher].append(i)

        warm = in_warmup(info.step, info.total_steps, o.warmup_ratio)
        mult = torch.zeros(b, dtype=torch.float64)
        records: list[dict[str, Any]] = []
        per_teacher: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        d_seen: dict[str, list[float]] = defaultdict(list)
        entropies = []
        for qid, by_t in groups.items():
            teachers = list(by_t)
            ck = [_nanmean([float(c[i]) for i in by_t[t]]) for t in teachers]
            ak = [_nanmean([float(a[i]) for i in by_t[t]]) for t in teachers]
            dk = [_nanmean([float(d[i]) for i in by_t[t]]) for t in teachers]
            dstar = [self.m.ema.smoothed(t, x) for t, x in zip(teachers, dk, strict=True)]
            fw = fuse(
                torch.tensor(ck, dtype=torch.float64),
                torch.tensor(ak, dtype=torch.float64),
                torch.tensor(dstar, dtype=torch.float64),
                o,
                warmup=warm,
            )
            entropies.append(weight_entropy(fw.weights))
            rows = [i for t in teachers for i in by_t[t]]
            split = split_over_branches(dict(zip(teachers, fw.weights.tolist(), strict=True)),
                                        [t for t in teachers for _ in by_t[t]])  # fmt: skip
            mult[torch.tensor(rows)] = len(rows) * split
            for j, t in enumerate(teachers):
                w = float(fw.weights[j])
                d_seen[t].append(dk[j])
                per_teacher[t]["weight"].append(w)
                for name, v in (("C", ck[j]), ("A", ak[j]), ("D", dstar[j])):
                    if math.isfinite(v):
                        per_teacher[t][name].append(v)
                records.append(
                    {
                        "question_id": qid,
                        "teacher": t,
                        "weight": w,
                        "C": _finite_or_none(ck[j]),
                        "A": _finite_or_none(ak[j]),
                        "D": _finite_or_none(dstar[j]),
                    }
                )
        self.m.ema.observe(d_seen)

        total = (losses * mult.to(losses.device, losses.dtype)).sum() / b
        scalars: dict[str, float] = {"compact/weight_entropy": sum(entropies) / len(entropies), "compact/warmup": warm}
        for t, vals in per_teacher.items():
            for name, xs in vals.items():
                if xs:
                    scalars[f"compact/{name}/{t}"] = sum(xs) / len(xs)
        return Computed(
            losses={"total": total, f"ce/{student.name}": losses.detach().mean()},
            records={"compact_weights": records},
            scalars={k: float(v) for k, v in scalars.items()},
        )
