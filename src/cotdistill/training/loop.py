"""The shared training loop every method runs on (Accelerate): data, batching, optimisation, logs, checkpoints.

A method (``training/methods``) turns a batch into named losses; this loop does everything else:
builds the students, tokenises every example once per student (over-long examples are dropped and counted),
batches (``path``: shuffled, length-grouped; ``question``: a question's examples always in one step), runs AdamW
with per-student learning rates, warm-up + cosine, clipping and gradient accumulation under bf16 autocast, logs
every loss to ``RUN/logs/train_metrics.jsonl`` and the trackers, checks the dev set each epoch (keeping
``students/<name>/best/``), checkpoints to ``RUN/checkpoints/`` and resumes exactly from the latest one.

Distributed (``accelerate launch`` / ``torchrun``, gloo on CPU): ``train.batch_size`` is the global micro-batch;
each process takes a shard, scales its loss by its share of the batch's examples and the gradients are summed
across processes, so N processes take the same steps as one process with the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cotdistill.config import RunConfig, StudentConfig
from cotdistill.errors import CotdistillError
from cotdistill.io import JsonlAppender, atomic_write_text
from cotdistill.records import Path, Question, load_questions, read_paths
from cotdistill.rundir import RunDir
from cotdistill.tasks import get_family
from cotdistill.training.collate import Encoded, collate, encode
from cotdistill.training.methods.base import (
    METHOD_REGISTRY,
    Batch,
    Example,
    Method,
    StepInfo,
    StudentHandle,
    StudentInputs,
    StudentOutput,
)

SCHEMA_VERSION = 1
KILL_ENV = "COTDISTILL_TEST_SIGKILL_AT_STEP"  # tests only: SIGKILL this process after that optimizer step


# ----------------------------------------------------------------------------------------------------- students
class Student(StudentHandle):
    """A student on the loop's device: forward with autocast, per-example response CE, optional pooled states."""

    def __init__(self, name: str, model: nn.Module, tokenizer: Any, device: torch.device, bf16: bool, lora: bool):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.device, self.bf16, self.lora = device, bf16, lora

    def forward(self, inputs: StudentInputs, hidden: bool = False) -> StudentOutput:
        ids = inputs.input_ids.to(self.device)
        mask = inputs.attention_mask.to(self.device)
        labels = inputs.labels.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=hidden, use_cache=False)
        logits = out.logits
        # token_loss[:, t] is the CE of predicting labels[:, t] from position t-1 (0 where labels == -100);
        # only response positions are cast to float and scored (prompt and padding logits are never touched)
        shift = labels[:, 1:]
        sel = shift != -100
        ce_sel = nn.functional.cross_entropy(logits[:, :-1][sel].float(), shift[sel], reduction="none")
        ce = torch.zeros(shift.shape, dtype=ce_sel.dtype, device=ce_sel.device).masked_scatter(sel, ce_sel)
        token_loss = torch.cat([ce.new_zeros(ce.size(0), 1), ce], dim=1)
        n = (labels != -100).sum(1).clamp(min=1)
        loss = token_loss.sum(1) / n
        pooled = None
        if hidden:
            h = out.hidden_states[-1].float()
            resp = (labels != -100).unsqueeze(-1).to(h.dtype)
            pooled = (h * resp).sum(1) / resp.sum(1).clamp(min=1)
        return StudentOutput(loss=loss, logits=logits, token_loss=token_loss, hidden=pooled)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable parameters only (frozen base weights are rebuilt from their source on resume)."""
        return {k: p.detach().cpu().clone() for k, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v)


# --------------------------------------------------------------------------------------------------------- data
@dataclass
class TrainData:
    """Questions by split and every train/dev path (with checks); ``fallback`` when no filter ran."""

    train_questions: dict[str, Question]
    dev_questions: dict[str, Question]
    train_paths: list[Path]
    dev_paths: list[Path]
    fallback: bool


def load_train_data(run: RunDir) -> TrainData:
    """Read questions and paths: ``filtered.jsonl`` (kept = ``checks.kept``) or, when no filter ran, every path of
    ``paths.jsonl`` marked kept."""
    if not run.questions.exists():
        raise CotdistillError(f"{run.questions}: not found (write questions first: cotdistill questions / import)")
    qs = load_questions(run.questions)
    fallback = not run.filtered.exists()
    src = run.paths if fallback else run.filtered
    if not src.exists():
        raise CotdistillError(f"{src}: not found (generate or import paths first)")
    train_q = {k: q for k, q in qs.items() if q.split == "train"}
    dev_q = {k: q for k, q in qs.items() if q.split == "dev"}
    tp: list[Path] = []
    dp: list[Path] = []
    for p in read_paths(src):
        if fallback:
            p.checks = {**p.checks, "kept": True}
        if p.question_id in train_q:
            tp.append(p)
        elif p.question_id in dev_q:
            dp.append(p)
    if not train_q:
        raise CotdistillError(f"{run.questions}: no train-split questions")
    return TrainData(train_q, dev_q, tp, dp, fallback)


def make_batches(
    lengths: list[int], groups: list[str], batch_size: int, seed: int, epoch: int, mode: str, length_grouping: bool
) -> list[list[int]]:
    """One epoch's batches of example indices, a pure function of (seed, epoch) so resume replays the same order.

    ``path``: shuffle, then (length_grouping) sort windows of 50 batches by length, cut batches, shuffle batches.
    ``question``: shuffle questions; pack whole questions until a batch has ``batch_size`` examples.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    if mode == "question":
        by_q: dict[str, list[int]] = {}
        for i in idx:
            by_q.setdefault(groups[i], []).append(i)
        qids = list(by_q)
        rng.shuffle(qids)
        batches: list[list[int]] = []
        cur: list[int] = []
        for q in qids:
            if cur and len(cur) + len(by_q[q]) > batch_size:
                batches.append(cur)
                cur = []
            cur = cur + by_q[q]
        if cur:
            batches.append(cur)
        return batches
    rng.shuffle(idx)
    if length_grouping:
        window = batch_size * 50
        idx = [i for w in range(0, len(idx), window) for i in sorted(idx[w : w + window], key=lambda j: -lengths[j])]
    batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    if length_grouping:
        rng.shuffle(batches)
    return batches


def shard(batch: list[int], groups: list[str], rank: int, world: int, mode: str) -> list[int]:
    """This process's part of a global batch (whole questions stay on one process in ``question`` mode)."""
    if world == 1:
        return batch
    if mode != "question":
        return batch[rank::world]
    units: list[list[int]] = []
    for i in batch:
        if units and groups[units[-1][0]] == groups[i]:
            units[-1].append(i)
        else:
            units.append([i])
    loads = [0] * world
    mine: list[int] = []
    for u in units:  # greedy balance: each question to the least-loaded process (deterministic on every rank)
        r = min(range(world), key=lambda k: (loads[k], k))
        loads[r] += len(u)
        if r == rank:
            mine.extend(u)
    return mine


# ------------------------------------------------------------------------------------------------------ helpers
def _texts_for_tokenizer(data: TrainData) -> Iterator[str]:
    """Train split's prompts and path texts: what preset tokenizers are trained on."""
    for q in data.train_questions.values():
        yield get_family(q.task).student_prompt(q)
    for p in data.train_paths:
        yield p.text


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _use_bf16(setting: bool | str, device: torch.device) -> bool:
    if setting == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return device.type == "cpu"
    return bool(setting)


def _count_lines(p: FsPath) -> int:
    if not p.exists():
        return 0
    with open(p, "rb") as f:
        return sum(1 for _ in f)


def _truncate_lines(p: FsPath, n: int) -> None:
    """Keep the first ``n`` lines of ``p`` (drop records written after the restored checkpoint)."""
    if not p.exists():
        return
    with open(p, "rb+") as f:
        pos = 0
        for _ in range(n):
            line = f.readline()
            if not line:
                break
            pos += len(line)
        f.truncate(pos)


class Logs:
    """The loop's JSONL logs (main process only): append-only, with a manifest so resume can trim them all."""

    def __init__(self, logs_dir: FsPath, active: bool):
        self.dir, self.active = logs_dir, active
        self.manifest = logs_dir / ".train_logs.json"
        self._open: dict[str, JsonlAppender] = {}
        self.names: list[str] = json.loads(self.manifest.read_text()) if self.manifest.exists() else []

    def write(self, name: str, records: list[dict[str, Any]]) -> None:
        if not self.active or not records:
            return
        if name not in self._open:
            if name not in self.names:
                self.names.append(name)
                atomic_write_text(self.manifest, json.dumps(self.names))
            self._open[name] = JsonlAppender(self.dir / f"{name}.jsonl")
        ap = self._open[name]
        for r in records:
            ap.write(r)

    def counts(self) -> dict[str, int]:
        for ap in self._open.values():
            ap._f.flush()
        return {n: _count_lines(self.dir / f"{n}.jsonl") for n in self.names}

    def restore(self, counts: dict[str, int] | None) -> None:
        """Trim every log to its checkpoint length (``None``: a fresh run, empty them all)."""
        self.close()
        if not self.active:
            return
        for n in self.names:
            _truncate_lines(self.dir / f"{n}.jsonl", (counts or {}).get(n, 0))

    def close(self) -> None:
        for ap in self._open.values():
            ap.close()
        self._open = {}


@dataclass
class LoopState:
    """Where training is: what a checkpoint holds besides weights and optimizer state."""

    step: int = 0
    epoch: int = 0
    micro: int = 0  # next micro-batch index inside the epoch
    batches: list[list[int]] | None = None
    best: dict[str, float] = field(default_factory=dict)
    tokens: int = 0


# --------------------------------------------------------------------------------------------------------- loop
class Trainer:
    """One training run of ``cfg.train.method`` over ``run``; ``fit()`` trains, dev-checks, checkpoints, saves."""

    def __init__(self, run: RunDir, cfg: RunConfig, method: str | None = None, resume: bool = True):
        from accelerate import Accelerator

        self.run, self.cfg, self.tc = run, cfg, cfg.train
        self.method_name = method or cfg.train.method
        if self.method_name not in METHOD_REGISTRY:
            _import_methods()
        if self.method_name not in METHOD_REGISTRY:
            known = ", ".join(sorted(METHOD_REGISTRY))
            raise CotdistillError(f"unknown method '{self.method_name}' (implemented: {known})")
        self.method_cls = METHOD_REGISTRY[self.method_name]
        n, lo, hi = len(cfg.students), self.method_cls.min_students, self.method_cls.max_students
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if hi == lo else f"{lo}..{hi if hi is not None else 'any'}"
            raise CotdistillError(
                f"method '{self.method_name}' needs {want} student(s) in the config's students list, got {n}"
            )
        self.ckpt_dir = run.root / "checkpoints"
        trackers = list(self.tc.trackers)
        # cpu=True on a machine without CUDA: Accelerate then sets up gloo under torchrun / accelerate launch
        self.acc = Accelerator(cpu=not torch.cuda.is_available(), log_with=trackers or None, project_dir=str(run.logs))
        self.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.main = self.acc.is_main_process
        self.bf16 = _use_bf16(self.tc.bf16, self.device)
        self.resume = resume
        self.summary: dict[str, Any] = {}

    # ---- setup
    def _build_students(self, data: TrainData) -> list[Student]:
        from cotdistill.students import build_student

        texts = list(_texts_for_tokenizer(data)) if any(s.kind == "preset" for s in self.cfg.students) else None
        out = []
        for i, sc in enumerate(self.cfg.students):
            _set_seed(self.cfg.seed * 7919 + i)  # each student's init depends only on the seed and its position
            with self.acc.main_process_first():  # rank 0 trains/caches the tokenizer, the others read it
                b = build_student(sc, texts, self.run.cache / "tokenizers")
            b.model.to(self.device)
            b.model.train()
            out.append(Student(sc.name, b.model, b.tokenizer, self.device, self.bf16, b.lora))
        return out

    def _encode(
        self, examples: list[Example], students: list[Student]
    ) -> tuple[list[Example], dict[str, list[Encoded]], int]:
        """Tokenise each example for every student; drop (and count) those over ``max_length`` for any student."""
        enc: dict[str, list[Encoded]] = {s.name: [] for s in students}
        keep: list[Example] = []
        dropped = 0
        for ex in examples:
            per = {s.name: encode(s.tokenizer, ex.prompt, ex.target) for s in students}
            if any(len(e) > self.tc.max_length for e in per.values()):
                dropped += 1
                continue
            keep.append(ex)
            for k, e in per.items():
                enc[k].append(e)
        return keep, enc, dropped

    def _optimizer(self, students: list[Student], modules: dict[str, nn.Module]):
        from transformers import get_cosine_schedule_with_warmup

        groups = []
        for s, sc in zip(students, self.cfg.students, strict=True):
            params = [p for p in s.model.parameters() if p.requires_grad]
            groups.append({"params": params, "lr": sc.lr, "name": s.name})
        mparams = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
        if mparams:
            groups.append({"params": mparams, "lr": float(self.tc.options.get("module_lr", 1e-4)), "name": "method"})
        opt = torch.optim.AdamW(groups, weight_decay=self.tc.weight_decay)
        warm = int(round(self.tc.warmup_ratio * self.total_steps))
        sched = get_cosine_schedule_with_warmup(opt, warm, max(1, self.total_steps))
        return opt, sched

    # ---- checkpoints
    def _checkpoints(self) -> list[FsPath]:
        if not self.ckpt_dir.exists():
            return []
        return sorted(p for p in self.ckpt_dir.glob("step-*") if p.is_dir() and (p / "state.pt").exists())

    def _save_checkpoint(self, st: LoopState) -> None:
        target = self.ckpt_dir / f"step-{st.step:08d}"
        tmp = self.ckpt_dir / f".step-{st.step:08d}.tmp"
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        torch.save(_rng_state(), tmp / f"rng-{self.rank}.pt")
        if self.main:
            state = {
                "step": st.step, "epoch": st.epoch, "micro": st.micro, "batches": st.batches, "best": st.best,
                "tokens": st.tokens, "world": self.world,
                "models": {s.name: s.trainable_state() for s in self.students},
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "method": self.method.state_dict(), "logs": self.logs.counts(),
            }  # fmt: skip
            torch.save(state, tmp / "state.pt")
        self.acc.wait_for_everyone()
        if self.main:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
            for old in self._checkpoints()[: -self.tc.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()

    def _load_checkpoint(self, path: FsPath) -> LoopState:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        if state["world"] != self.world:
            raise CotdistillError(
                f"{path}: checkpoint written by {state['world']} process(es), resuming with {self.world}; "
                "resume with the same number of processes or pass --fresh"
            )
        for s in self.students:
            s.load_trainable_state(state["models"][s.name])
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.logs.restore(state["logs"])
        _set_rng_state(torch.load(path / f"rng-{self.rank}.pt", map_location="cpu", weights_only=False))
        return LoopState(
            step=state["step"], epoch=state["epoch"], micro=state["micro"], batches=state["batches"],
            best=state["best"], tokens=state["tokens"],
        )  # fmt: skip

    # ---- dev check and saving
    def _dev_check(self, st: LoopState, data: TrainData) -> list[dict[str, Any]]:
        """Per student: mean response CE on dev kept paths (lower is better) or greedy accuracy on dev questions."""
        metric = self.tc.dev_metric
        dev_paths = [p for p in data.dev_paths if p.checks.get("kept")]
        if metric == "auto":
            metric = "loss" if dev_paths else "accuracy"
        if (metric == "loss" and not dev_paths) or (metric == "accuracy" and not data.dev_questions):
            return []
        recs = []
        for s in self.students:
            if metric == "loss":
                value = self._dev_loss(s, data, dev_paths)
                better = s.name not in st.best or value < st.best[s.name]
            else:
                value = self._dev_accuracy(s, data)
                better = s.name not in st.best or value > st.best[s.name]
            if better:
                st.best[s.name] = value
                if self.main:
                    self._save(s, self.run.students / s.name / "best")
            recs.append({"student": s.name, "metric": metric, "value": value, "best": better})
        return recs

    @torch.no_grad()
    def _dev_loss(self, s: Student, data: TrainData, dev_paths: list[Path]) -> float:
        was = s.model.training
        s.model.eval()
        items = []
        for p in dev_paths:
            q = data.dev_questions[p.question_id]
            e = encode(s.tokenizer, get_family(q.task).student_prompt(q), p.text)
            if len(e) <= self.tc.max_length:
                items.append(e)
        total, n = 0.0, 0
        items.sort(key=len)
        for i in range(0, len(items), self.tc.batch_size):
            chunk = items[i : i + self.tc.batch_size]
            out = s.forward(collate(chunk, s.tokenizer.pad_token_id))
            total += float(out.loss.sum())
            n += len(chunk)
        s.model.train(was)
        return total / max(n, 1)

    def _dev_accuracy(self, s: Student, data: TrainData) -> float:
        from cotdistill.training.generate import greedy

        qs = list(data.dev_questions.values())
        prompts = [get_family(q.task).student_prompt(q) for q in qs]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            texts = greedy(s.model, s.tokenizer, prompts, self.tc.dev_max_new_tokens)
        ok = sum(get_family(q.task).is_correct(t, q) for q, t in zip(qs, texts, strict=True))
        return ok / max(len(qs), 1)

    def _save(self, s: Student, out: FsPath) -> None:
        from cotdistill.students import save_student

        merge = bool((self._student_cfg(s.name).lora or {}).get("merge", True))
        save_student(s.model, s.tokenizer, out, merge=merge)

    def _student_cfg(self, name: str) -> StudentConfig:
        return next(sc for sc in self.cfg.students if sc.name == name)

    # ---- gradients across processes
    def _sync_grads(self, params: list[nn.Parameter]) -> None:
        """Sum gradients over processes (each already scaled by its share of the batch); missing grads count 0."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        off = 0
        for g in grads:
            g.copy_(flat[off : off + g.numel()].view_as(g))
            off += g.numel()

    # ---- the run
    def fit(self) -> dict[str, Any]:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        cfg, tc = self.cfg, self.tc
        data = load_train_data(self.run)
        self.students = self._build_students(data)
        _set_seed(cfg.seed)
        self.method: Method = self.method_cls(cfg, self.students, self.run)  # type: ignore[arg-type]
        self.modules = self.method.modules()
        for m in self.modules.values():
            m.to(self.device)
        examples = self.method.examples(data.train_questions, list(data.train_paths))
        examples, enc, dropped = self._encode(examples, self.students)
        if not examples:
            raise CotdistillError(
                f"no training examples for method '{self.method_name}' (kept train paths: "
                f"{sum(1 for p in data.train_paths if p.checks.get('kept'))}, "
                f"over max_length {tc.max_length}: {dropped})"
            )
        lengths = [max(len(enc[s.name][i]) for s in self.students) for i in range(len(examples))]
        groups = [ex.question.id for ex in examples]
        mode = self.method_cls.batching
        micro_per_epoch = len(make_batches(lengths, groups, tc.batch_size, cfg.seed, 0, mode, tc.length_grouping))
        steps_per_epoch = math.ceil(micro_per_epoch / tc.grad_accum)
        self.total_steps = steps_per_epoch * tc.epochs
        self.opt, self.sched = self._optimizer(self.students, self.modules)
        params = [p for g in self.opt.param_groups for p in g["params"]]

        self.logs = Logs(self.run.logs, self.main)
        st = LoopState()
        ckpts = self._checkpoints()
        if self.resume and ckpts:
            st = self._load_checkpoint(ckpts[-1])
            resumed_from = ckpts[-1].name
        else:
            resumed_from = None
            if self.main:
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)
                self.logs.restore(None)
            self.acc.wait_for_everyone()
        if self.tc.trackers:  # Accelerate's trackers exist only after init_trackers
            self.acc.init_trackers("tb")
        self.summary = {
            "schema_version": SCHEMA_VERSION, "method": self.method_name, "examples": len(examples),
            "dropped_overlong": dropped, "max_length": tc.max_length, "filter_ran": not data.fallback,
            "train_questions": len(data.train_questions), "students": [s.name for s in self.students],
            "total_steps": self.total_steps, "processes": self.world, "bf16": self.bf16, "resumed_from": resumed_from,
        }  # fmt: skip
        if self.main and data.fallback:
            self.acc.print(f"note: {self.run.filtered} not found; training on every path of {self.run.paths}")
        if self.main and dropped:
            self.acc.print(f"note: dropped {dropped} example(s) longer than train.max_length={tc.max_length} tokens")

        kill_at = int(os.environ.get(KILL_ENV, "-1"))
        t0, tokens0 = time.perf_counter(), st.tokens
        pending: dict[str, float] = {}
        n_pending = 0
        progress = Progress(
            TextColumn("[bold]train[/] {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not self.main, transient=False,
        )  # fmt: skip
        with progress:
            task = progress.add_task(self.method_name, total=self.total_steps, completed=st.step, info="")
            for epoch in range(st.epoch, tc.epochs):
                if st.batches is None or st.epoch != epoch:
                    st.batches = make_batches(lengths, groups, tc.batch_size, cfg.seed, epoch, mode, tc.length_grouping)
                    st.micro = 0
                st.epoch = epoch
                batches = st.batches
                while st.micro < len(batches):
                    gstart = (st.micro // tc.grad_accum) * tc.grad_accum
                    gend = min(gstart + tc.grad_accum, len(batches))
                    n_micro = gend - gstart
                    glob = batches[st.micro]
                    mine = shard(glob, groups, self.rank, self.world, mode)
                    info = StepInfo(step=st.step, epoch=epoch, total_steps=self.total_steps)
                    if mine:
                        batch = Batch(
                            examples=[examples[i] for i in mine],
                            inputs={
                                s.name: collate([enc[s.name][i] for i in mine], s.tokenizer.pad_token_id)
                                for s in self.students
                            },
                        )
                        computed = self.method.compute(batch, info)
                        scale = len(mine) / len(glob) / n_micro
                        self.acc.backward(computed.losses["total"] * scale)
                        for k, v in computed.losses.items():
                            pending[k] = pending.get(k, 0.0) + float(v.detach()) * len(mine) / len(glob) / n_micro
                        for k, v in computed.scalars.items():
                            pending[f"scalar/{k}"] = pending.get(f"scalar/{k}", 0.0) + v / n_micro
                        records = computed.records
                        st.tokens += sum(int(b.attention_mask.sum()) for b in batch.inputs.values())
                    else:
                        records = {}
                    self._write_records(records, st.step, epoch)
                    n_pending += 1
                    st.micro += 1
                    if st.micro < gend:
                        continue
                    # ---- optimizer step
                    self._sync_grads(params)
                    if tc.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
                    lrs = {g["name"]: g["lr"] for g in self.opt.param_groups}
                    self.opt.step()
                    self.sched.step()
                    self.opt.zero_grad(set_to_none=True)
                    losses = self._reduce_losses(pending)
                    named = {k: v for k, v in losses.items() if not k.startswith("scalar/")}
                    rec = {
                        "schema_version": SCHEMA_VERSION,
                        "step": st.step,
                        "epoch": epoch,
                        "losses": named,
                        "lr": lrs,
                    }
                    scalars = {k[7:]: v for k, v in losses.items() if k.startswith("scalar/")}
                    if scalars:
                        rec["scalars"] = scalars
                    self.logs.write("train_metrics", [rec])
                    if self.acc.trackers:
                        self.acc.log({**{f"loss/{k}": v for k, v in rec["losses"].items()},
                                      **{f"lr/{k}": v for k, v in lrs.items()}, **scalars}, step=st.step)  # fmt: skip
                    pending, n_pending = {}, 0
                    st.step += 1
                    tps = (st.tokens - tokens0) * self.world / max(time.perf_counter() - t0, 1e-9)
                    progress.update(task, completed=st.step, info=f"loss {losses.get('total', 0):.4f} {tps:,.0f} tok/s")
                    end_of_epoch = st.micro >= len(batches)
                    if end_of_epoch:
                        self._end_epoch(st, data, epoch)
                    if (tc.checkpoint_every and st.step % tc.checkpoint_every == 0) or end_of_epoch:
                        if end_of_epoch:  # the checkpoint starts the next epoch
                            st.epoch, st.micro, st.batches = epoch + 1, 0, None
                        self._save_checkpoint(st)
                        if end_of_epoch:
                            st.epoch, st.micro, st.batches = epoch, len(batches), batches
                    if kill_at >= 0 and st.step >= kill_at:
                        self.logs.close()
                        os.kill(os.getpid(), signal.SIGKILL)
                st.batches = None
        elapsed = time.perf_counter() - t0
        if self.main:
            for s in self.students:
                self._save(s, self.run.students / s.name)
        self.summary.update(
            steps=st.step, tokens=st.tokens - tokens0, seconds=elapsed,
            tokens_per_s=(st.tokens - tokens0) * self.world / max(elapsed, 1e-9), best=st.best,
        )  # fmt: skip
        if self.main:
            atomic_write_text(self.run.logs / "train_summary.json", json.dumps(self.summary, indent=2))
        self.logs.close()
        self.acc.wait_for_everyone()
        self.acc.end_training()  # also tears down the process group
        return self.summary

    def _end_epoch(self, st: LoopState, data: TrainData, epoch: int) -> None:
        recs = self._dev_check(st, data)
        self.logs.write("dev", [{"schema_version": SCHEMA_VERSION, "step": st.step, "epoch": epoch, **r} for r in recs])
        if self.acc.trackers and recs:
            self.acc.log({f"dev/{r['student']}": r["value"] for r in recs}, step=st.step)
        self._write_records(self.method.on_epoch_end(epoch), st.step, epoch)

    def _write_records(self, records: dict[str, list[dict[str, Any]]], step: int, epoch: int) -> None:
        if self.world > 1:
            from accelerate.utils import gather_object

            names = sorted(records)
            gathered = gather_object([records])
            records = {}
            for r in gathered:
                for k, v in r.items():
                    records.setdefault(k, []).extend(v)
            del names
        for name, recs in records.items():
            self.logs.write(name, [{"schema_version": SCHEMA_VERSION, "step": step, "epoch": epoch, **r} for r in recs])

    def _reduce_losses(self, pending: dict[str, float]) -> dict[str, float]:
        if self.world == 1:
            return pending
        from accelerate.utils import gather_object

        out: dict[str, float] = {}
        for d in gather_object([pending]):
            for k, v in d.items():
                out[k] = out.get(k, 0.0) + (v / self.world if k.startswith("scalar/") else v)
        return out


def _import_methods() -> None:
    """Import every method module so its ``@register_method`` runs (modules that fail to import are skipped)."""
    import importlib
    import pkgutil

    import cotdistill.training.methods as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name != "base":
            try:
                importlib.import_module(f"{pkg.__name__}.{m.name}")
            except ImportError:  # pragma: no cover - an optional method's dependency is missing
                pass


def train(run_dir: str | os.PathLike, cfg: RunConfig, method: str | None = None, resume: bool = True) -> dict[str, Any]:
    """Train ``method`` (default ``cfg.train.method``) on ``run_dir``; returns the run summary."""
    return Trainer(RunDir.at(run_dir), cfg, method, resume).fit()
