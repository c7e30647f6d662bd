"""Baselines (METHODS.md §3): ``sft-single``, ``sft-multi`` and ``step-by-step``, on the shared loop.

Every student gets the same examples; a student's loss is the batch mean of its per-example mean response CE,
and ``total`` sums the students' losses (each student has its own parameters, so the sum trains them apart).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from cotdistill.records import Question, ReasoningPath, is_kept
from cotdistill.tasks import get_family
from cotdistill.training.methods.base import Batch, Computed, Example, Method, StepInfo


class _SFT(Method):
    fsdp_ready = True

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        losses: dict[str, torch.Tensor] = {}
        total = None
        for s in self.students:
            out = s.forward(batch.inputs[s.name])
            ce = out.loss.mean()
            losses[f"ce/{s.name}"] = ce
            total = ce if total is None else total + ce.to(total.device)  # students may live on other devices
        assert total is not None
        losses["total"] = total
        return Computed(losses=losses)


class SFTMulti(_SFT):
    """All kept paths of all teachers and styles, uniform: the multi-path / multi-teacher union."""

    name = "sft-multi"

    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        return [
            self.path_example(questions[p.question_id], p) for p in paths if is_kept(p) and p.question_id in questions
        ]


class SFTSingle(_SFT):
    """One path per question: the first kept path of ``options.teacher`` / ``options.style`` (either optional)."""

    name = "sft-single"

    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        teacher, style = self.opts.teacher, self.opts.style
        chosen: dict[str, ReasoningPath] = {}
        for p in paths:
            if p.question_id not in questions or p.question_id in chosen or not is_kept(p):
                continue
            if (teacher is None or p.teacher == teacher) and (style is None or p.style == style):
                chosen[p.question_id] = p
        return [self.path_example(questions[qid], p) for qid, p in chosen.items()]


class StepByStep(Method):
    """Distilling step-by-step: per path a rationale example and an answer example, with task prefixes.

    Loss per student: ``L_answer + alpha * L_rationale`` (means over the batch's examples of each kind).
    Defaults: ``rationale_prefix: ""`` (so the plain evaluation prompt asks for rationale + answer) and
    ``answer_prefix: "[answer] "``; set ``rationale_prefix: "[rationale] "`` for the paper's symmetric prefixes.
    """

    name = "step-by-step"
    has_answer_task = True  # its answer examples are built here, with options.answer_prefix
    fsdp_ready = True

    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        rp, ap = self.opts.rationale_prefix, self.opts.answer_prefix
        out: list[Example] = []
        for p in paths:
            if not is_kept(p) or p.question_id not in questions:
                continue
            q = questions[p.question_id]
            fam = get_family(q.task)
            out.append(self.path_example(q, p, rp))
            out.append(Example(q, self.prompt(q, ap), fam.format_answer(q.gold), path=p, kind="answer"))
        return out

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        alpha = self.opts.alpha
        is_ans = torch.tensor([e.kind == "answer" for e in batch.examples])
        losses: dict[str, torch.Tensor] = {}
        total = None
        for s in self.students:
            out = s.forward(batch.inputs[s.name])
            m = is_ans.to(out.loss.device)
            zero = out.loss.sum() * 0.0
            # each kind's mean is over the global micro-batch, not this process's shard of it
            la = batch.kind_mean(out.loss[m], answer=True) if m.any() else zero
            lr = batch.kind_mean(out.loss[~m], answer=False) if (~m).any() else zero
            loss = la + alpha * lr
            losses[f"ce/{s.name}"] = loss
            losses[f"answer/{s.name}"] = la
            losses[f"rationale/{s.name}"] = lr
            total = loss if total is None else total + loss.to(total.device)
        assert total is not None
        losses["total"] = total
        return Computed(losses=losses)
