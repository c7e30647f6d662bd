"""The contract between the shared training loop and a method.

A method turns a batch into named losses and log records; it never owns a loop. The loop (``training/loop.py``)
builds the students, tokenises every example once per student, batches, runs ``Method.compute``, backpropagates
``losses["total"]`` once, clips, steps the optimizer and scheduler, logs every loss component, checkpoints
(models, optimizer, scheduler, RNG, data order, ``Method.state_dict``) and resumes. A method's options are its
registered :class:`~cotdistill.training.methods.registry.MethodOptions` model, validated when the config loads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError
from cotdistill.records import Question, ReasoningPath
from cotdistill.rundir import RunDir
from cotdistill.students.encoding import StudentInputs
from cotdistill.students.prompt import question_prompt
from cotdistill.tasks import get_family


@dataclass
class Example:
    """One training example: a prompt (the zero-shot question prompt) and the target text the student learns."""

    question: Question
    prompt: str
    target: str
    path: ReasoningPath | None = None  # the teacher path behind ``target`` (None for e.g. step-by-step's answer task)
    kind: str = "rationale"  # free label a method may use ("rationale", "answer", ...)
    closed: bool = False  # the target is the path closed with the family's answer sentence (train.answer_sentence)


def training_target(q: Question, text: str, answer_sentence: bool) -> tuple[str, bool]:
    """The target a student learns for path ``text``: closed with the family's answer sentence when asked and
    strict extraction finds no answer in it but lenient extraction does; and whether it was closed."""
    if answer_sentence:
        sentence = get_family(q.task).closing_sentence(text, q)
        if sentence is not None:
            return text.rstrip() + "\n" + sentence, True
    return text, False


def slice_inputs(inputs: StudentInputs, idx: torch.Tensor) -> StudentInputs:
    """Rows ``idx`` of a right-padded batch, trimmed to their own longest sequence (no wasted padding)."""
    mask = inputs.attention_mask[idx]
    t = int(mask.sum(dim=1).max().item()) if idx.numel() else 1
    return StudentInputs(input_ids=inputs.input_ids[idx, :t], attention_mask=mask[:, :t], labels=inputs.labels[idx, :t])


@dataclass
class StudentOutput:
    """What ``Student.forward`` returns: per-example mean CE over response tokens and optional extras."""

    loss: torch.Tensor  # [B] per-example mean token CE (differentiable)
    logits: torch.Tensor  # [B, T, V]
    token_loss: torch.Tensor  # [B, T] per-token CE (0 where labels == -100)
    hidden: torch.Tensor | None = None  # [B, H] mean-pooled last hidden state over response tokens (if asked)
    states: torch.Tensor | None = None  # [B, T, H] last layer's hidden states at every position (if asked)
    cache: Any = None  # the model's key/value cache of the whole batch (if asked), to continue a row cheaply


@dataclass
class Batch:
    """A batch as methods see it: examples plus each student's inputs for the same examples."""

    examples: list[Example]
    inputs: dict[str, StudentInputs]  # student name -> inputs
    # every example of the global micro-batch this process's shard belongs to (None: the shard is the whole
    # batch); the loop scales a shard's loss by its share of examples, so a method whose loss is a mean over a
    # subset of the batch (step-by-step's per-kind means) reads its normalisers from here
    global_examples: list[Example] | None = None
    # FSDP, a process whose shard is empty: the loop hands it the micro-batch's first example to forward at zero
    # weight (every process must gather the same layers); a method with batch statistics leaves it out of them
    weightless: bool = False

    def global_share(self) -> float:
        """The global micro-batch's size over this shard's (1 with one process)."""
        return len(self.global_examples) / len(self.examples) if self.global_examples else 1.0

    def kind_scale(self, answer: bool) -> float:
        """What a sum over this shard's answer examples (``answer``) or its other examples is multiplied by to be
        its part of the mean over the global micro-batch's examples of that kind: the shard's share (which the loop
        multiplies by) over the kind's global count. With one process: 1 / the batch's count of that kind."""
        n = sum((e.kind == "answer") == answer for e in (self.global_examples or self.examples))
        return self.global_share() / max(n, 1)

    def kind_mean(self, values: torch.Tensor, answer: bool) -> torch.Tensor:
        """This shard's part of the mean over the global micro-batch's examples of one kind, from ``values`` (one
        per shard example of that kind); with one process their plain mean."""
        return values.sum() * self.kind_scale(answer)


@dataclass
class StepInfo:
    """Where the loop is: global optimizer step (0-based), epoch (0-based), and the total step count."""

    step: int
    epoch: int
    total_steps: int


class StudentHandle(ABC):
    """A student as methods see it: its name, model, tokenizer and a forward that computes response-token CE."""

    name: str
    model: nn.Module
    tokenizer: Any

    @abstractmethod
    def forward(
        self, inputs: StudentInputs, hidden: bool = False, states: bool = False, cache: bool = False
    ) -> StudentOutput:
        """Run the model (autocast as configured) and return per-example losses; ``hidden`` adds pooled states,
        ``states`` the last layer's per-token states, ``cache`` the key/value cache."""


@dataclass
class Computed:
    """A method's answer for one batch: named scalar losses (``total`` is backpropagated) and log records.

    ``records`` maps a log name (``routing``, ``compact_weights``, ...) to JSON-able dicts; the loop adds
    ``schema_version``, ``step`` and ``epoch`` and appends them to ``RUN/logs/<name>.jsonl``.
    """

    losses: dict[str, torch.Tensor]
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)  # extra per-step numbers for the tracker


class Method(ABC):
    """Base of every training method (sft-single, sft-multi, step-by-step, qr-distill, compact)."""

    name: ClassVar[str]
    batching: ClassVar[Literal["path", "question"]] = "path"  # "question": all of a question's examples together
    min_students: ClassVar[int] = 1
    max_students: ClassVar[int | None] = None
    has_answer_task: ClassVar[bool] = False  # its examples() already hold answer-only examples (step-by-step)
    fsdp_ready: ClassVar[bool] = False  # forwards each student once per micro-batch, whatever the data (FSDP-safe)
    sharded: bool = False  # set by the loop under FSDP: the method must then run the same forwards on every process
    step_answered: bool = False  # options.answer_examples: the step so far held answer examples (on any process)

    def __init__(self, cfg: RunConfig, students: list[StudentHandle], run: RunDir) -> None:
        from cotdistill.training.methods.registry import method_spec

        self.cfg = cfg
        self.students = students
        self.run = run
        self.opts: Any = method_spec(self.name).options.model_validate(dict(cfg.train.options))

    def prompt(self, q: Question, prefix: str = "") -> str:
        """The prompt of ``q`` under the run's prompt policy (``prompt``), after an optional task prefix."""
        return prefix + question_prompt(q, self.cfg.prompt)

    def path_example(self, q: Question, path: ReasoningPath, prefix: str = "") -> Example:
        """The standard example: the question's prompt, the path as target (closed with the answer sentence
        when ``train.answer_sentence`` asks and the path states no answer a strict reader finds)."""
        target, closed = training_target(q, path.text, self.cfg.train.answer_sentence)
        return Example(question=q, prompt=self.prompt(q, prefix), target=target, path=path, closed=closed)

    @classmethod
    def fsdp_refusal(cls, options: dict[str, Any]) -> str | None:
        """Why this method cannot run under FSDP with these ``train.options`` (one line), or None."""
        del options
        return None

    @property
    def module_lr(self) -> float:
        """Learning rate of :meth:`modules` (the method's ``module_lr`` option where it has modules)."""
        return float(getattr(self.opts, "module_lr", 1e-4))

    @abstractmethod
    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        """Choose and build training examples from the filtered paths (``paths`` yields every path with checks)."""

    @abstractmethod
    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        """Forward the students on ``batch`` and return the losses to backpropagate."""

    def training_examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        """What the loop trains on: :meth:`examples`, plus with ``options.answer_examples`` one answer-only example
        per path example (step-by-step's answer task for any method: the prompt after ``answer_examples_prefix``,
        the family's answer sentence for the gold answer as target, ``kind = "answer"``)."""
        out = self.examples(questions, paths)
        if not getattr(self.opts, "answer_examples", False):
            return out
        if self.has_answer_task:
            raise ConfigError(f"method '{self.name}' trains answer examples already; drop options.answer_examples")
        prefix = self.opts.answer_examples_prefix
        extra = [
            Example(ex.question, self.prompt(ex.question, prefix), get_family(ex.question.task).format_answer(
                ex.question.gold), path=ex.path, kind="answer")
            for ex in out if ex.path is not None and ex.kind != "answer"
        ]  # fmt: skip
        return out + extra

    def step(self, batch: Batch, info: StepInfo) -> Computed:
        """What the loop calls per micro-batch: :meth:`compute`; with ``options.answer_examples`` on the batch's
        other examples, plus ``L_answer`` per student (the mean CE of its answer examples: ``answer/<student>``,
        added to ``ce/<student>`` and the total, as step-by-step's ``L_answer + alpha * L_rationale``).

        Both means are over the global micro-batch: on a shard, each part is rescaled from its own share of the
        part's global examples to the shard's share of the batch, which the loop multiplies by. Sharded (FSDP), a
        part the shard lacks is run on a stand-in example at zero weight, so every process runs both."""
        if not getattr(self.opts, "answer_examples", False) or self.has_answer_task:
            return self.compute(batch, info)
        ans = [i for i, e in enumerate(batch.examples) if e.kind == "answer"]
        rest = [i for i, e in enumerate(batch.examples) if e.kind != "answer"]
        # every student took the global micro-batch's answer examples (see idle_students)
        self.step_answered |= any(e.kind == "answer" for e in batch.global_examples or batch.examples)
        if rest:
            glob_rest = [e for e in batch.global_examples or [] if e.kind != "answer"] or None
            computed = self.compute(_subset(batch, rest, glob_rest), info)
            # compute's losses are its part of the mean over glob_rest; rescale them to the loop's shard share
            f = len(rest) * batch.kind_scale(answer=False)
            computed.losses = {k: v * f for k, v in computed.losses.items()}
        elif self.sharded:
            stand_in = self.compute(_subset(batch, [0], weightless=True), info)
            computed = Computed(losses={"total": stand_in.losses["total"] * 0.0})
        else:
            self.on_empty_shard(info)
            computed = Computed(losses={})
        losses = computed.losses
        total = losses.get("total")
        answers = _subset(batch, ans) if ans else (_subset(batch, [0]) if self.sharded else None)
        for s in self.students:
            if answers is not None:
                la = batch.kind_mean(s.forward(answers.inputs[s.name]).loss, answer=True) * (1.0 if ans else 0.0)
            else:
                la = (total * 0.0) if total is not None else torch.zeros(())
            losses[f"answer/{s.name}"] = la
            losses[f"ce/{s.name}"] = losses[f"ce/{s.name}"] + la if f"ce/{s.name}" in losses else la
            total = la if total is None else total + la
        assert total is not None
        losses["total"] = total
        return computed

    def on_empty_shard(self, info: StepInfo) -> None:
        """Called instead of :meth:`compute` on a process whose shard of a micro-batch is empty (several
        processes, a micro-batch smaller than their number): a method whose ``compute`` exchanges statistics
        across processes joins those collectives here."""
        del info

    def modules(self) -> dict[str, nn.Module]:
        """Extra trainable modules (a router, regressors); the loop optimises and checkpoints them."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Non-parameter state to checkpoint (EMAs, counters)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        del state

    def idle_students(self) -> list[int]:
        """Called by the loop before each optimizer step: the students (indices) whose gradients of the step are to
        be dropped, so the optimizer skips them. Sharded, QR-Distill forwards every student on every path, and a
        student that took no path in the step holds all-zero gradients where without sharding it holds none."""
        return []

    def on_step_end(self, world: int) -> None:
        """Hook after each optimizer step, called on every process (so it may sum statistics over processes with
        ``training.distributed.sum_across``): e.g. fold the step's losses into an EMA."""
        del world

    def on_epoch_end(self, epoch: int) -> dict[str, list[dict[str, Any]]]:
        """Hook after each epoch; may return log records like ``Computed.records``."""
        return {}


def _subset(
    batch: Batch, idx: list[int], global_examples: list[Example] | None = None, weightless: bool = False
) -> Batch:
    """The examples ``idx`` of ``batch`` with each student's inputs cut to them (``global_examples``: those of the
    global micro-batch the subset stands for; ``weightless``: a stand-in; a stand-in's subsets are stand-ins)."""
    t = torch.tensor(idx, dtype=torch.long)
    inputs = {k: slice_inputs(v, t) for k, v in batch.inputs.items()}
    return Batch([batch.examples[i] for i in idx], inputs, global_examples, batch.weightless or weightless)
