"""QR-Distill (METHODS.md §1): students trained jointly, each on the paths a learned router sends it, teaching
each other on the paths they share.

Per batch: the router gives each (path, student) an independent straight-through Gumbel-sigmoid gate; each
student runs one forward with gradients on the paths it took and a cheap no-grad forward on the rest (the router
needs every student's loss on every path to learn, the student needs gradients only on its own); the loss is

    L = sum_s [sum_j g_js CE_s(r_j) / max(1, sum_j g_js)] - lambda1 H(gbar) + lambda2 L_mutual + c L_competence

Options (``train.options``; ablations are switches): :class:`~cotdistill.training.methods.qr_distill.options.QROptions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError
from cotdistill.records import Question, ReasoningPath, is_kept
from cotdistill.rundir import RunDir
from cotdistill.training.methods.base import (
    Batch,
    Computed,
    Example,
    Method,
    StepInfo,
    StudentHandle,
    StudentInputs,
)
from cotdistill.training.methods.qr_distill.peer import (
    PeerSpace,
    check_shared_tokenizer,
    competence_loss,
    competence_target,
    masked_softmax,
    mutual_hidden_loss,
    mutual_logits_loss,
)
from cotdistill.training.methods.qr_distill.router import Gates, Router, all_open, gate_entropy, gated_student_loss
from cotdistill.training.methods.qr_distill.router import sample_gates as _sample_gates


def _slice(inputs: StudentInputs, idx: torch.Tensor) -> StudentInputs:
    """Rows ``idx`` of a right-padded batch, trimmed to their own longest sequence (no wasted padding)."""
    mask = inputs.attention_mask[idx]
    t = int(mask.sum(dim=1).max().item()) if idx.numel() else 1
    return StudentInputs(input_ids=inputs.input_ids[idx, :t], attention_mask=mask[:, :t], labels=inputs.labels[idx, :t])


def _hidden_size(model: nn.Module) -> int:
    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return int(text_cfg.hidden_size)


class QRDistill(Method):
    """Quality-filtered routing with cooperative distillation, for S >= 2 students of any architecture."""

    name = "qr-distill"
    batching = "path"
    min_students = 2

    def __init__(self, cfg: RunConfig, students: list[StudentHandle], run: RunDir) -> None:
        super().__init__(cfg, students, run)
        if len(students) < 2:
            raise ConfigError(f"qr-distill trains S >= 2 students jointly; the config has {len(students)}")
        self.names = [s.name for s in students]
        if self.opts.peer and self.opts.peer_mode == "logits":
            check_shared_tokenizer([s.tokenizer for s in students], self.names)
        self._emb: dict[str, torch.Tensor] = {}
        self.router: Router | None = None  # built once the encoder's dimension is known (in examples())
        self.peer_space = PeerSpace([_hidden_size(s.model) for s in students], self.opts.shared_dim, cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self._counts: dict[tuple[str, str], list[int]] = {}
        self._last_ce: dict[tuple[str, int], float] = {}  # closed_loss=cached: (path id, student) -> last loss
        if self.opts.routing:
            self.router = Router(self._encoder_dim(), len(students), seed=cfg.seed)

    # ------------------------------------------------------------------ data

    def _encoder(self):
        from cotdistill.embeddings import Encoder

        if getattr(self, "_enc", None) is None:
            self._enc = Encoder(self.opts.encoder, cache_dir=self.run.cache / "embeddings")
        return self._enc

    def _encoder_dim(self) -> int:
        """Router input: the question's and the path's embeddings side by side."""
        return 2 * int(self._encoder().dim)

    def _embed(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        """Question and path text embedded separately (the path's vector is shared with the filter's consensus
        cache, so a filtered run embeds nothing twice), concatenated per path."""
        enc = self._encoder()
        qtexts = sorted({e.question.question for e in examples})
        qvec = dict(zip(qtexts, enc.encode(qtexts), strict=True))
        pvec = enc.encode([e.target for e in examples])
        return {
            e.path.id: torch.from_numpy(np.concatenate([qvec[e.question.question], pvec[i]]))  # type: ignore[union-attr]
            for i, e in enumerate(examples)
        }

    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        """Every kept path of a known question (every path with ``filter: false``), embedded once for the router."""
        out: list[Example] = []
        for p in paths:
            q = questions.get(p.question_id)
            if q is None:
                continue
            if self.opts.filter and not is_kept(p):
                continue
            out.append(self.path_example(q, p))
        if self.opts.routing:
            todo = [e for e in out if e.path is not None and e.path.id not in self._emb]
            if todo:
                self._emb.update(self._embed(todo))
        return out

    # ------------------------------------------------------------------ training step

    def _gates(self, batch: Batch, training: bool) -> Gates:
        n, s = len(batch.examples), len(self.students)
        if not self.opts.routing or not training or self.router is None:
            dev = next(iter(batch.inputs.values())).input_ids.device
            return all_open(n, s, dev)
        dev = next(self.router.parameters()).device
        emb = torch.stack([self._emb[e.path.id] for e in batch.examples]).to(dev)  # type: ignore[union-attr]
        logits = self.router(emb)
        return _sample_gates(logits, self.opts.tau, self.generator, fallback=self.opts.fallback)

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        training = torch.is_grad_enabled()
        n, n_st = len(batch.examples), len(self.students)
        gates = self._gates(batch, training)
        hard = gates.hard
        peer_on = self.opts.peer and (self.opts.lambda2 > 0 or self.opts.competence_weight > 0) and n_st >= 2
        co = hard.sum(dim=1) >= 2 if peer_on else torch.zeros(n, dtype=torch.bool, device=hard.device)
        logits_mode = peer_on and self.opts.peer_mode == "logits" and bool(co.any())
        ce_all, pooled, full_logits = [], [], []
        losses: dict[str, torch.Tensor] = {}
        for s, st in enumerate(self.students):
            want_hidden = peer_on and bool((co & hard[:, s]).any())
            ce, hid, logits = self._student_losses(batch, s, hard[:, s], want_hidden, logits_mode, training)
            ce_all.append(ce)
            pooled.append(hid)
            if logits is not None:
                full_logits.append(logits)
            losses[f"ce/{st.name}"] = gated_student_loss(ce, gates.gates[:, s].to(ce.device))
        total = sum(losses.values())
        assert isinstance(total, torch.Tensor)
        if self.opts.routing and training:
            losses["entropy"] = gate_entropy(gates.decisions).to(total.device)
            total = total - self.opts.lambda1 * losses["entropy"]
        records: dict[str, list[dict[str, Any]]] = {}
        if peer_on:
            l_mut, l_comp, records["competence"] = self._peer_losses(batch, hard, co, ce_all, pooled, full_logits)
            losses["mutual"], losses["competence"] = l_mut, l_comp
            total = total + self.opts.lambda2 * l_mut + self.opts.competence_weight * l_comp
            if not training or not records["competence"]:
                del records["competence"]
        losses["total"] = total
        scalars = {
            "gate_mean": float(gates.gates.detach().float().mean()),
            "sampled_gate_mean": float(gates.decisions.detach().float().mean()),
            "fallback_rate": float(gates.fallback.float().mean()),
        }
        if training:
            routing = self._routing_records(batch, gates)
            if routing:
                records["routing"] = routing
        return Computed(losses=losses, records=records, scalars=scalars)

    def _student_losses(
        self, batch: Batch, s: int, col: torch.Tensor, want_hidden: bool, logits_mode: bool, training: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Student ``s``'s loss on every path of the batch: a forward with gradients on the paths it took, and
        (training) the router's view of the others: a no-grad forward or the cached last loss. Also its pooled
        hidden states on its open paths (peer teaching) and, in logits mode, its logits on every path."""
        st = self.students[s]
        inputs = batch.inputs[st.name]
        n = len(batch.examples)
        if logits_mode or bool(col.all()) or not self.opts.routing:
            out = st.forward(inputs, hidden=want_hidden)
            return out.loss.float(), out.hidden, out.logits if logits_mode else None
        open_idx = col.nonzero().squeeze(1).to(inputs.input_ids.device)
        closed_idx = (~col).nonzero().squeeze(1).to(inputs.input_ids.device)
        ce = torch.zeros(n, device=inputs.input_ids.device)
        hid = None
        if open_idx.numel():
            out = st.forward(_slice(inputs, open_idx), hidden=want_hidden)
            ce = ce.index_put((open_idx,), out.loss.float())
            if out.hidden is not None:
                hid = out.hidden.new_zeros(n, out.hidden.shape[1]).index_put((open_idx,), out.hidden)
        if closed_idx.numel() and training:
            if self.opts.closed_loss == "forward":
                with torch.no_grad():  # the router's gradient needs these losses; the student's does not
                    closed_ce = st.forward(_slice(inputs, closed_idx)).loss.float()
            else:
                closed_ce = self._cached_losses(batch, closed_idx, s, ce[open_idx].detach())
            ce = ce.index_put((closed_idx,), closed_ce.to(ce.device))
        if training and self.opts.closed_loss == "cached":
            self._remember_losses(batch, col, s, ce)
        return ce, hid, None

    def _peer_losses(
        self,
        batch: Batch,
        hard: torch.Tensor,
        co: torch.Tensor,
        ce_all: list[torch.Tensor],
        pooled: list[torch.Tensor | None],
        full_logits: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """``L_mutual`` and the competence regressors' loss over the co-routed paths, with their log records."""
        dev = ce_all[0].device
        if not bool(co.any()):
            zero = ce_all[0].new_zeros(())
            return zero, zero, []
        rows = co.nonzero().squeeze(1)
        mask = hard[rows].to(dev)
        n_st = len(self.students)
        z = torch.stack(
            [
                self.peer_space.project(s, pooled[s][rows.to(pooled[s].device)].to(dev))  # type: ignore[index]
                if pooled[s] is not None
                else torch.zeros(len(rows), self.peer_space.dim, device=dev)
                for s in range(n_st)
            ],
            dim=1,
        )  # [R, S, d]
        comp_logits = self.peer_space.competence_logits(z.detach())
        gamma = masked_softmax(comp_logits, mask)
        ce_rows = torch.stack([c.to(dev)[rows.to(dev)] for c in ce_all], dim=1)
        target = competence_target(ce_rows, mask, self.opts.competence_temperature)
        l_comp = competence_loss(comp_logits, target, mask)
        if full_logits:
            l_mut = self._mutual_logits(batch, rows, full_logits, gamma, mask)
        else:
            l_mut = mutual_hidden_loss(z, gamma, mask)
        gamma_d, target_d = gamma.detach().cpu(), target.detach().cpu()
        records = [
            {
                "question_id": batch.examples[j].question.id,
                "path_id": batch.examples[j].path.id if batch.examples[j].path else None,
                "gamma": {self.names[s]: round(float(gamma_d[r, s]), 6) for s in range(n_st) if mask[r, s]},
                "target": {self.names[s]: round(float(target_d[r, s]), 6) for s in range(n_st) if mask[r, s]},
            }
            for r, j in enumerate(rows.tolist())
        ]
        return l_mut, l_comp, records

    def _mutual_logits(
        self, batch: Batch, rows: torch.Tensor, full_logits: list[torch.Tensor], gamma: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Token-level KL to the competence-weighted mixture (students that tokenise identically)."""
        dev = gamma.device
        ids = [batch.inputs[nm].input_ids for nm in self.names]
        if any(x.shape != ids[0].shape or not torch.equal(x.cpu(), ids[0].cpu()) for x in ids[1:]):
            raise ConfigError(
                "qr-distill peer_mode 'logits': the students tokenized the same example differently "
                "(different chat templates?); use train.options.peer_mode=hidden"
            )
        labels = batch.inputs[self.names[0]].labels.to(dev)[rows.to(dev)]
        v = min(lg.shape[-1] for lg in full_logits)
        lgs = [lg[rows.to(lg.device), :, :v].to(dev) for lg in full_logits]
        return mutual_logits_loss(lgs, labels, gamma, mask)

    def _routing_records(self, batch: Batch, gates: Gates) -> list[dict[str, Any]]:
        """Every (path, student) decision of the batch (``log_routing``); also counts the per-style rates."""
        routing = []
        prob, hard_cpu, fb = gates.prob.detach().cpu(), gates.hard.cpu(), gates.fallback.cpu()
        for j, ex in enumerate(batch.examples):
            style = ex.path.style if ex.path else ex.kind
            for s, name in enumerate(self.names):
                g = int(hard_cpu[j, s])
                c = self._counts.setdefault((style, name), [0, 0])
                c[0] += g
                c[1] += 1
                if self.opts.log_routing:
                    routing.append({
                        "question_id": ex.question.id, "path_id": ex.path.id if ex.path else None,
                        "teacher": ex.path.teacher if ex.path else None, "style": style, "student": name,
                        "gate": g, "prob": round(float(prob[j, s]), 6), "fallback": bool(fb[j]) and g == 1,
                    })  # fmt: skip
        return routing

    def _cached_losses(self, batch: Batch, idx: torch.Tensor, s: int, open_ce: torch.Tensor) -> torch.Tensor:
        """Last seen loss of student ``s`` on each path in ``idx``; the open paths' mean for paths it never took."""
        fill = float(open_ce.mean()) if open_ce.numel() else 0.0
        vals = [self._last_ce.get((batch.examples[i].path.id, s), fill) for i in idx.tolist()]  # type: ignore[union-attr]
        return torch.tensor(vals, dtype=torch.float32)

    def _remember_losses(self, batch: Batch, col: torch.Tensor, s: int, ce: torch.Tensor) -> None:
        vals = ce.detach().float().cpu().tolist()
        for i in col.nonzero().squeeze(1).tolist():
            ex = batch.examples[i]
            if ex.path is not None:
                self._last_ce[(ex.path.id, s)] = vals[i]

    # ------------------------------------------------------------------ state

    def modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {}
        if self.router is not None:
            mods["router"] = self.router
        if self.opts.peer:
            mods["peer"] = self.peer_space
        return mods

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "counts": [[style, student, c[0], c[1]] for (style, student), c in self._counts.items()],
            "last_ce": [[pid, s, v] for (pid, s), v in self._last_ce.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).cpu())
        self._counts = {(st, su): [int(a), int(b)] for st, su, a, b in state.get("counts", [])}
        self._last_ce = {(pid, int(s)): float(v) for pid, s, v in state.get("last_ce", [])}

    def on_epoch_end(self, epoch: int) -> dict[str, list[dict[str, Any]]]:
        """Per-style selection rates of each student over the epoch (the paper's Fig. 4/5), then reset."""
        rates = [
            {"epoch": epoch, "style": style, "student": student, "rate": c[0] / c[1] if c[1] else 0.0, "n": c[1]}
            for (style, student), c in sorted(self._counts.items())
        ]
        self._counts = {}
        return {"routing_rates": rates} if rates else {}
