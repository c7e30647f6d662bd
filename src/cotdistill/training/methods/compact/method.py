"""COMPACT (METHODS.md §2): one student, K teachers, each branch's loss weighted per question in real time.

Batches are question-major, so all of a question's branches (teacher rationales) are in the same step and on the
same process. ``variant: paper`` (default, §2a-§2e) is ``paper.py``; ``variant: v1`` (§2f) is ``v1.py``. Both
split a teacher's weight over its branches (the logged weight is the teacher's real share of the gradient) and
keep the per-teacher difficulty EMA, folded in once per optimizer step after summing over processes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch

from cotdistill.config import RunConfig
from cotdistill.records import Question, ReasoningPath, is_kept
from cotdistill.rundir import RunDir
from cotdistill.training.methods.base import Batch, Computed, Example, Method, StepInfo, StudentHandle
from cotdistill.training.methods.compact.branches import TokenCache
from cotdistill.training.methods.compact.paper import compute_paper
from cotdistill.training.methods.compact.signals import Projection, attention_projection, random_projection
from cotdistill.training.methods.compact.v1 import V1, consensus_of, encode_scored
from cotdistill.training.methods.compact.weights import DifficultyEMA

__all__ = ["CompactMethod", "consensus_of", "encode_scored"]


class CompactMethod(Method):
    """COMPACT: compatibility-aware weights over a question's branches (one student, K >= 1 teachers)."""

    name = "compact"
    batching = "question"
    min_students = 1
    max_students = 1
    fsdp_ready = True  # the paper variant evens its data-dependent forwards out when sharded (sharded.py)

    @classmethod
    def fsdp_refusal(cls, options: dict[str, Any]) -> str | None:
        if options.get("variant", "paper") == "v1":
            return "variant v1 runs data-dependent forwards (processes would gather different layers); use ddp"
        if options.get("cons_projection") == "attention":
            return "cons_projection 'attention' calls the student's attention layer outside its forward; use 'random'"
        return None

    def __init__(self, cfg: RunConfig, students: list[StudentHandle], run: RunDir) -> None:
        super().__init__(cfg, students, run)
        self.ema = DifficultyEMA(self.opts.ema_mu)
        self.tokens = TokenCache()
        self._projection: Projection | None = None
        self.v1 = V1(self) if self.opts.variant == "v1" else None

    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        """Every kept path of a training question (all paths with ``unfiltered: true``), question-major."""
        by_q: dict[str, list[Example]] = defaultdict(list)
        for p in paths:
            q = questions.get(p.question_id)
            if q is None or q.split != "train":
                continue
            if not self.opts.unfiltered and not is_kept(p):
                continue
            by_q[q.id].append(self.path_example(q, p))
        return [ex for qid in by_q for ex in by_q[qid]]

    def projection(self, hidden: int) -> Projection:
        """S_cons's W_Q/W_K: the student's last attention layer (``cons_projection: attention``, where it has one
        whose output fits) or a random orthogonal matrix seeded by the run's seed."""
        if self._projection is None:
            proj = None
            if self.opts.cons_projection == "attention":
                proj = attention_projection(self.students[0].model)
                if proj is not None:
                    try:
                        proj.project(torch.zeros(2, hidden))
                    except (RuntimeError, ValueError):  # a layer whose projections do not take the last states
                        proj = None
            self._projection = proj or random_projection(hidden, self.cfg.seed)
        return self._projection

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        """The variant's losses, weight records and scalars for one batch."""
        if self.v1 is not None:
            return self.v1.compute(batch, info)
        return compute_paper(self, batch, info)

    def on_step_end(self, world: int) -> None:
        """Fold the step's losses into the difficulty EMA, summed over every process."""
        self.ema.sync(world)

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state.get("ema", {}))
