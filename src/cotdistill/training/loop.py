"""The shared training loop every method runs on (Accelerate): setup, epochs of micro-batches, optimizer steps,
dev checks, checkpoints and the final save.

A method (``training/methods``) turns a batch into named losses; this loop does everything else: builds the
students, tokenises every example once per student (``training.data``), runs AdamW with per-student learning
rates, warm-up + cosine, clipping and gradient accumulation under bf16 autocast, logs every loss to
``RUN/logs/train_metrics.jsonl`` and the trackers, checks the dev set each epoch (keeping
``students/<name>/best/``), checkpoints to ``RUN/checkpoints/`` and resumes exactly from the latest one.

Distributed (``accelerate launch`` / ``torchrun``, gloo on CPU): ``train.batch_size`` is the global micro-batch;
each process takes a shard, scales its loss by its share of the batch's examples and the gradients are summed
across processes, so N processes take the same steps as one process with the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from typing import Any

import torch

from cotdistill.config import RunConfig
from cotdistill.errors import CotdistillError
from cotdistill.io import atomic_write_text
from cotdistill.progress import stage_progress
from cotdistill.rundir import RunDir
from cotdistill.students.encoding import Encoded, collate, pad_id
from cotdistill.training import devcheck, engines, sharding
from cotdistill.training.checkpoint import CheckpointStore, LoopState, fingerprint_changes, train_fingerprint
from cotdistill.training.data import TrainData, encode_examples, load_train_data, make_batches, shard, tokenizer_texts
from cotdistill.training.distributed import gather_records, reduce_logged, sum_gradients
from cotdistill.training.logs import Logs
from cotdistill.training.methods.base import Batch, Example, Method, StepInfo
from cotdistill.training.methods.registry import method_spec
from cotdistill.training.optim import build_optimizer
from cotdistill.training.placing import build_students
from cotdistill.training.rng import set_seed
from cotdistill.training.saving import StudentSaver
from cotdistill.training.student import Student
from cotdistill.training.tb import event_sizes, restore_events

SCHEMA_VERSION = 1
KILL_ENV = "COTDISTILL_TEST_SIGKILL_AT_STEP"  # tests only: SIGKILL this process after that optimizer step


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matmul kernels (AVX512 or Arm bf16, as oneDNN needs them): on an AVX2-only CPU
    bf16 autocast falls back to slow reference kernels (SmolLM2 + LoRA training 0.03x fp32, docs/benchmarks.md)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def use_bf16(setting: bool | str, device: torch.device) -> bool:
    """``train.bf16``: ``auto`` is on for bf16-capable CUDA devices and for CPUs with fast bf16 kernels."""
    if setting == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return device.type == "cpu" and cpu_has_fast_bf16()
    return bool(setting)


class Trainer:
    """One training run of ``cfg.train.method`` over ``run``; ``fit()`` trains, dev-checks, checkpoints, saves."""

    def __init__(self, run: RunDir, cfg: RunConfig, resume: bool = True, warm_start: bool = False):
        from accelerate import Accelerator

        from cotdistill.stages.preflight import preflight

        self.run, self.cfg, self.tc = run, cfg, cfg.train
        self.method_name = cfg.train.method
        self.method_cls: type[Method] = method_spec(self.method_name).load()
        preflight(cfg, ("method",))  # the number of students the method takes
        trackers = list(self.tc.trackers)
        # cpu=True on a machine without CUDA: Accelerate then sets up gloo under torchrun / accelerate launch
        self.acc = Accelerator(cpu=not torch.cuda.is_available(), log_with=trackers or None, project_dir=str(run.logs))
        self.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.main = self.acc.is_main_process
        self.bf16 = use_bf16(self.tc.bf16, self.device)
        self.fsdp = engines.choose(self.acc, self.method_cls, cfg)
        self.resume, self.warm_start = resume, warm_start
        self.start_note: dict[str, Any] = {}
        self.ckpts = CheckpointStore(run.checkpoints, self.acc, self.tc.keep_checkpoints)
        self.summary: dict[str, Any] = {}

    # ---- setup
    def _build_students(self, data: TrainData) -> list[Student]:
        presets = any(s.kind == "preset" for s in self.cfg.students)
        texts = list(tokenizer_texts(data, self.cfg.prompt)) if presets else None
        self.saver = StudentSaver(self.cfg, self.main, self.fsdp, texts, self.run.tokenizers_cache)
        mesh = sharding.device_mesh(self.device, self.world) if self.fsdp else None
        return build_students(self.cfg, self.acc, texts, self.run.tokenizers_cache, mesh, self.bf16)

    def _setup(self, data: TrainData) -> None:
        """Students, method, examples (tokenised once per student), epoch length, optimizer and logs."""
        tc = self.tc
        self.students = self._build_students(data)
        set_seed(self.cfg.seed)
        self.method: Method = self.method_cls(self.cfg, self.students, self.run)
        self.method.sharded = self.fsdp
        self.modules = self.method.modules()
        for m in self.modules.values():
            m.to(self.device)
        examples = self.method.training_examples(data.train_questions, list(data.train_paths))
        sharding.reshard(self.students)  # FSDP: a method's no-grad forwards (QR-Distill's calibration) gather
        self.examples, self.enc, self.dropped = encode_examples(examples, self.students, tc.max_length)
        if not self.examples:
            raise CotdistillError(
                f"no training examples for method '{self.method_name}' (kept train paths: {data.kept_train()}, "
                f"over max_length {tc.max_length}: {self.dropped})"
            )
        self.lengths = [max(len(self.enc[s.name][i]) for s in self.students) for i in range(len(self.examples))]
        self.groups = [ex.question.id for ex in self.examples]
        self.mode = self.method_cls.batching
        steps_per_epoch = math.ceil(len(self._batches(0)) / tc.grad_accum)
        self.total_steps = steps_per_epoch * tc.epochs
        self.opt, self.sched = build_optimizer(
            self.students, self.cfg.students, self.modules, self.method.module_lr, tc, self.total_steps
        )
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.logs = Logs(self.run.logs, self.main)
        self.fingerprint = train_fingerprint(self.cfg, self.examples, [s.tokenizer for s in self.students])

    def _batches(self, epoch: int) -> list[list[int]]:
        tc = self.tc
        return make_batches(self.lengths, self.groups, tc.batch_size, self.cfg.seed, epoch, self.mode,
                            tc.length_grouping)  # fmt: skip

    def _start(self) -> tuple[LoopState, str | None]:
        """Resume from the latest checkpoint when it was made from this run's data, students, method and schedule;
        otherwise start fresh with empty logs, saying in one line what changed (``--warm-start``: keep its weights)."""
        ckpts = self.ckpts.list() if self.resume or self.warm_start else []
        latest = ckpts[-1] if ckpts else None
        state = self.ckpts.read(latest) if latest is not None else None
        if self.warm_start:
            return self._warm(latest, state), None
        if latest is not None and state is not None:
            changes = fingerprint_changes(state.get("fingerprint"), self.fingerprint)
            if not changes:
                st = self.ckpts.resume(latest, state)
                self._load_weights(state, modules=True)
                opt_state = state["optimizer"]
                if self.fsdp:  # the checkpoint holds whole moments; this process keeps its shards
                    opt_state = sharding.shard_optimizer_state(opt_state, self.params)
                self.opt.load_state_dict(opt_state)
                self.sched.load_state_dict(state["scheduler"])
                self.method.load_state_dict(state["method"])
                self.logs.restore(state["logs"])
                if self.main:
                    restore_events(self.run.logs / "tb", state.get("tensorboard"))
                return st, latest.name
            why = f"checkpoint {latest.name} does not match this run ({'; '.join(changes)})"
            self.start_note = {"fresh_start": why}
            if self.main:
                self.acc.print(f"note: {why}: starting fresh, old checkpoints cleared (--warm-start keeps its weights)")
        self._fresh()
        return LoopState(), None

    def _load_weights(self, state: dict[str, Any], modules: bool) -> None:
        for s in self.students:
            s.load_trainable_state(state["models"][s.name])
        for k, m in self.modules.items() if modules else ():
            m.load_state_dict(state["modules"][k])

    def _fresh(self) -> None:
        """Clear checkpoints, logs and TensorBoard events of an earlier run: this one starts at step 0."""
        self.ckpts.clear()
        if self.main:
            self.logs.restore(None)
            restore_events(self.run.logs / "tb", None)
        self.acc.wait_for_everyone()

    def _warm(self, latest: Any, state: dict[str, Any] | None) -> LoopState:
        """``--warm-start``: the latest checkpoint's weights (same students and tokenizers), a fresh schedule, an
        immediate checkpoint at step 0 so a kill resumes the warm start rather than a cold one."""
        if latest is None or state is None:
            raise CotdistillError(f"--warm-start: no checkpoint in {self.run.checkpoints} to take the weights from")
        old, new = state.get("fingerprint") or {}, self.fingerprint
        if (old.get("students"), old.get("tokenizers")) != (new["students"], new["tokenizers"]):
            what = "other students or tokenizers" if old else "an older cotdistill (no fingerprint)"
            raise CotdistillError(
                f"--warm-start: checkpoint {latest.name} was made with {what}, so its weights may not fit "
                "(a preset's tokenizer is trained on the train split); use --fresh"
            )
        self._load_weights(state, modules=old.get("method") == self.method_name)
        self._fresh()
        self.start_note = {"warm_start_from": latest.name}
        if self.main:
            self.acc.print(f"note: warm start from {latest.name}'s weights; schedule, optimizer and logs start anew")
        st = LoopState()
        self.ckpts.save(st, self._checkpoint_payload())
        return st

    def _checkpoint_payload(self) -> dict[str, Any]:
        """What a checkpoint holds beyond the loop state, on the main process ({} elsewhere); under FSDP every
        process gathers the sharded weights and moments with it."""
        if not (self.main or self.fsdp):
            return {}
        models = {s.name: s.trainable_state(keep=self.main) for s in self.students}  # FSDP: every process gathers
        opt = sharding.full_optimizer_state(self.opt.state_dict(), self.main) if self.fsdp else self.opt.state_dict()
        if not self.main:
            return {}
        return {
            "models": models,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizer": opt, "scheduler": self.sched.state_dict(),
            "method": self.method.state_dict(), "logs": self.logs.counts(), "fingerprint": self.fingerprint,
            "tensorboard": event_sizes(self.acc, self.run.logs / "tb"),
        }  # fmt: skip

    # ---- the run
    def fit(self) -> dict[str, Any]:
        data = load_train_data(self.run, self.tc.max_paths, self.tc.max_paths_per_teacher)
        self._setup(data)
        st, resumed_from = self._start()
        if self.tc.trackers:  # Accelerate's trackers exist only after init_trackers
            self.acc.init_trackers("tb", init_kwargs={"tensorboard": {"purge_step": st.step}})
        self._begin_summary(data, resumed_from)
        t0, tokens0 = time.perf_counter(), st.tokens
        self._pending: dict[str, float] = {}
        with stage_progress("train", self.total_steps, enabled=self.main, completed=st.step) as bar:
            for epoch in range(st.epoch, self.tc.epochs):
                self._run_epoch(st, epoch, data, bar, t0, tokens0)
        return self._finish(st, time.perf_counter() - t0, st.tokens - tokens0)

    def _begin_summary(self, data: TrainData, resumed_from: str | None) -> None:
        tc = self.tc
        self.summary = {
            "schema_version": SCHEMA_VERSION, "method": self.method_name, "examples": len(self.examples),
            "dropped_overlong": self.dropped, "max_length": tc.max_length, "filter_ran": not data.fallback,
            "prompt": self.cfg.prompt, "answer_sentence_closed": sum(ex.closed for ex in self.examples),
            "train_questions": len(data.train_questions), "students": [s.name for s in self.students],
            "total_steps": self.total_steps, "processes": self.world,
            "engine": "fsdp" if self.fsdp else ("ddp" if self.world > 1 else "one process"), "bf16": self.bf16,
            "resumed_from": resumed_from, **self.start_note,
            "unknown_question_paths": data.unknown_question_paths, "duplicate_paths": data.duplicate_paths,
        }  # fmt: skip
        if self.main and resumed_from:
            self.acc.print(f"note: resuming from checkpoint {resumed_from} of {self.total_steps} steps")
        if self.main and data.fallback:
            self.acc.print(f"note: {self.run.filtered} not found; training on every path of {self.run.paths}")
        for n, what in ((data.unknown_question_paths, "name no question of questions.jsonl"),
                        (data.duplicate_paths, "repeat an earlier path's id (the first one is kept)")):  # fmt: skip
            if self.main and n:
                self.acc.print(f"note: skipped {n} path(s) that {what}")
        if self.main and self.dropped:
            self.acc.print(f"note: dropped {self.dropped} example(s) longer than train.max_length={tc.max_length}")

    def _run_epoch(self, st: LoopState, epoch: int, data: TrainData, bar: Any, t0: float, tokens0: int) -> None:
        """The rest of epoch ``epoch`` from ``st.micro``: micro-batches, an optimizer step every ``grad_accum``."""
        if st.batches is None or st.epoch != epoch:
            st.batches, st.micro = self._batches(epoch), 0
        st.epoch = epoch
        batches = st.batches
        accum = self.tc.grad_accum
        while st.micro < len(batches):
            gstart = (st.micro // accum) * accum
            gend = min(gstart + accum, len(batches))
            self._micro_step(st, batches[st.micro], gend - gstart, epoch)
            st.micro += 1
            if st.micro < gend:
                continue
            losses = self._optimizer_step(st, epoch)
            tps = (st.tokens - tokens0) * self.world / max(time.perf_counter() - t0, 1e-9)
            bar.update(st.step, f"loss {losses.get('total', 0):.4f} {tps:,.0f} tok/s")
            self._after_step(st, batches, epoch, data)
        st.batches = None

    def _micro_step(self, st: LoopState, glob: list[int], n_micro: int, epoch: int) -> None:
        """Forward + backward of this process's shard of one global micro-batch; losses accumulate for the log."""
        mine = shard(glob, self.groups, self.rank, self.world, self.mode)
        records: dict[str, list[dict[str, Any]]] = {}
        info = StepInfo(step=st.step, epoch=epoch, total_steps=self.total_steps)
        if not mine and self.fsdp:  # FSDP gathers each layer in every process: join the forwards at zero weight
            computed = self.method.step(self._batch(glob[:1], [self.examples[i] for i in glob]), info)
            self.acc.backward(computed.losses["total"] * 0.0)
        elif not mine:  # a method exchanging batch statistics (qr-distill) still joins their collectives
            self.method.on_empty_shard(info)
        else:
            batch = self._batch(mine)
            batch.global_examples = [self.examples[i] for i in glob] if self.world > 1 else None
            computed = self.method.step(batch, info)
            share = len(mine) / len(glob) / n_micro
            self.acc.backward(computed.losses["total"] * share)
            for k, v in computed.losses.items():
                self._pending[k] = self._pending.get(k, 0.0) + float(v.detach()) * share
            for k, v in computed.scalars.items():
                self._pending[f"scalar/{k}"] = self._pending.get(f"scalar/{k}", 0.0) + v / n_micro
            records = computed.records
            st.tokens += sum(int(b.attention_mask.sum()) for b in batch.inputs.values())
        self._write_records(records, st.step, epoch)

    def _batch(self, idx: list[int], stand_in_for: list[Example] | None = None) -> Batch:
        """The examples ``idx`` with each student's inputs (``stand_in_for``: an empty shard's FSDP stand-in)."""
        examples: list[Example] = [self.examples[i] for i in idx]
        inputs = {}
        for s in self.students:
            items: list[Encoded] = [self.enc[s.name][i] for i in idx]
            inputs[s.name] = collate(items, pad_id(s.tokenizer))
        return Batch(examples, inputs, global_examples=stand_in_for, weightless=stand_in_for is not None)

    def _optimizer_step(self, st: LoopState, epoch: int) -> dict[str, float]:
        """Sum gradients over processes, clip, step, log the step's losses; returns them."""
        for i in self.method.idle_students():
            self.students[i].model.zero_grad(set_to_none=True)
        sum_gradients([p for p in self.params if not sharding.is_sharded(p)], self.world)  # FSDP reduced the rest
        if self.tc.max_grad_norm > 0:
            sharding.clip_grad_norm(self.params, self.tc.max_grad_norm)
        lrs = {g["name"]: g["lr"] for g in self.opt.param_groups}
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.method.on_step_end(self.world)  # every process: the method's step statistics, summed over them
        losses = reduce_logged(self._pending, self.world)
        self._pending = {}
        named = {k: v for k, v in losses.items() if not k.startswith("scalar/")}
        rec: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "step": st.step, "epoch": epoch, "losses": named,
                               "lr": lrs}  # fmt: skip
        scalars = {k[7:]: v for k, v in losses.items() if k.startswith("scalar/")}
        if scalars:
            rec["scalars"] = scalars
        self.logs.write("train_metrics", [rec])
        if self.acc.trackers:
            self.acc.log({**{f"loss/{k}": v for k, v in named.items()}, **{f"lr/{k}": v for k, v in lrs.items()},
                          **scalars}, step=st.step)  # fmt: skip
        st.step += 1
        return losses

    def _after_step(self, st: LoopState, batches: list[list[int]], epoch: int, data: TrainData) -> None:
        """End of an epoch (dev check), a checkpoint when due, and the tests' kill point."""
        end_of_epoch = st.micro >= len(batches)
        if end_of_epoch:
            self._end_epoch(st, data, epoch)
        if (self.tc.checkpoint_every and st.step % self.tc.checkpoint_every == 0) or end_of_epoch:
            if end_of_epoch:  # the checkpoint starts the next epoch
                st.epoch, st.micro, st.batches = epoch + 1, 0, None
            self.ckpts.save(st, self._checkpoint_payload())
            if end_of_epoch:
                st.epoch, st.micro, st.batches = epoch, len(batches), batches
        kill_at = int(os.environ.get(KILL_ENV, "-1"))
        if kill_at >= 0 and st.step >= kill_at:
            self.logs.close()
            os.kill(os.getpid(), signal.SIGKILL)

    def _end_epoch(self, st: LoopState, data: TrainData, epoch: int) -> None:
        recs = self._dev_check(st, data)
        self.logs.write("dev", [{"schema_version": SCHEMA_VERSION, "step": st.step, "epoch": epoch, **r} for r in recs])
        if self.acc.trackers and recs:
            self.acc.log({f"dev/{r['student']}": r["value"] for r in recs}, step=st.step)
        self._write_records(self.method.on_epoch_end(epoch), st.step, epoch)

    def _dev_check(self, st: LoopState, data: TrainData) -> list[dict[str, Any]]:
        """Per student the dev metric; the best value so far is saved to ``students/<name>/best/``."""
        metric = devcheck.dev_metric(self.tc.dev_metric, data)
        if metric is None:
            return []
        recs = []
        for s in self.students:
            if metric == "loss":
                value = devcheck.dev_loss(s, data, self.cfg)
                better = s.name not in st.best or value < st.best[s.name]
            else:
                value = devcheck.dev_accuracy(s, data, self.cfg)
                better = s.name not in st.best or value > st.best[s.name]
            if better:
                st.best[s.name] = value
                self.saver.save(s, self.run.students / s.name / "best")
            recs.append({"student": s.name, "metric": metric, "value": value, "best": better})
        sharding.reshard(self.students)  # FSDP: free what the dev forwards (no backward) left gathered
        return recs

    def _write_records(self, records: dict[str, list[dict[str, Any]]], step: int, epoch: int) -> None:
        for name, recs in gather_records(records, self.world).items():
            self.logs.write(name, [{"schema_version": SCHEMA_VERSION, "step": step, "epoch": epoch, **r} for r in recs])

    def _finish(self, st: LoopState, elapsed: float, tokens: int) -> dict[str, Any]:
        for s in self.students:
            self.saver.save(s, self.run.students / s.name)
        self.summary.update(steps=st.step, tokens=tokens, seconds=elapsed,
                            tokens_per_s=tokens * self.world / max(elapsed, 1e-9), best=st.best)  # fmt: skip
        if self.main:
            atomic_write_text(self.run.train_summary, json.dumps(self.summary, indent=2))
        self.logs.close()
        self.acc.wait_for_everyone()
        self.acc.end_training()  # also tears down the process group
        return self.summary
