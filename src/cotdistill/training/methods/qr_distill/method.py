"""QR-Distill (METHODS.md §1): students trained jointly, each on the paths a learned router sends it, teaching
each other on the paths they share.

Per batch: the router gives each (path, student) an independent straight-through Gumbel-sigmoid gate; each
student runs one forward with gradients on the paths it took and a cheap no-grad forward on the rest (the router
needs every student's loss on every path to learn, the student needs gradients only on its own); the loss is

    L = sum_s [sum_j g_js CE_s(r_j) / max(1, sum_j g_js)] - lambda1 H(gbar) + lambda2 L_mutual + c L_competence

with every count and mean over the whole global batch (``stats.py``), so N processes take the steps of one.
Options (``train.options``; ablations are switches): :class:`~cotdistill.training.methods.qr_distill.options.QROptions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError
from cotdistill.records import Question, ReasoningPath, is_kept
from cotdistill.rundir import RunDir
from cotdistill.training.data import PathCap
from cotdistill.training.distributed import all_gather_objects, is_main_process, main_process_first
from cotdistill.training.methods.base import Batch, Computed, Example, Method, StepInfo, StudentHandle, slice_inputs
from cotdistill.training.methods.qr_distill.diagnostics import RoutingDiagnostics, step_part
from cotdistill.training.methods.qr_distill.inputs import (
    calibration_states,
    embed_paths,
    encoder_dim,
    hidden_size,
)
from cotdistill.training.methods.qr_distill.peer import PeerSpace, check_shared_tokenizer
from cotdistill.training.methods.qr_distill.peer_losses import peer_rows
from cotdistill.training.methods.qr_distill.router import (
    Gates,
    Router,
    all_open,
    entropy_of,
    gated_student_loss,
    path_uniforms,
    router_signal,
    sample_gates,
)
from cotdistill.training.methods.qr_distill.stats import StepStats, empty_stats, globalise, reduce_stats


class QRDistill(Method):
    """Quality-filtered routing with cooperative distillation, for S >= 2 students of any architecture."""

    name = "qr-distill"
    batching = "path"
    min_students = 2
    fsdp_ready = True  # when sharded, every student forwards every path of the shard (see _student_losses)

    @classmethod
    def fsdp_refusal(cls, options: dict[str, Any]) -> str | None:
        if options.get("closed_loss") == "cached":
            return "closed_loss 'cached' skips forwards per process; sharded students forward every path, use 'forward'"
        return None

    def __init__(self, cfg: RunConfig, students: list[StudentHandle], run: RunDir) -> None:
        super().__init__(cfg, students, run)
        if len(students) < 2:
            raise ConfigError(f"qr-distill trains S >= 2 students jointly; the config has {len(students)}")
        self.names = [s.name for s in students]
        if self.opts.peer and self.opts.peer_mode == "logits":
            check_shared_tokenizer([s.tokenizer for s in students], self.names)
        self._emb: dict[str, torch.Tensor] = {}
        sizes = [hidden_size(s.model) for s in students]
        self.peer_space = PeerSpace(sizes, self.opts.shared_dim, cfg.seed, self.opts.projection)
        self.diagnostics = RoutingDiagnostics(self.names)
        self._last_ce: dict[tuple[str, int], float] = {}  # closed_loss=cached: (path id, student) -> last loss
        self._reached = torch.zeros(len(students), dtype=torch.bool)  # sharded: students that took a path this step
        self.router: Router | None = None
        if self.opts.routing:
            self.router = Router(encoder_dim(self.opts.encoder), len(students), seed=cfg.seed)
            if self.opts.routing == "random":  # the control: frozen at its seeded initialisation
                self.router.requires_grad_(False)

    # ------------------------------------------------------------------ data

    def examples(self, questions: dict[str, Question], paths: Iterable[ReasoningPath]) -> list[Example]:
        """Every kept path of a known question, embedded once for the router; the router's input standardisation
        and the peer maps are fitted on them (the same on every process). With ``filter: false`` (the 'w/o QF'
        ablation) every path counts, under the same ``train.max_paths`` / ``max_paths_per_teacher`` budget as the
        kept ones (the first paths of each question in file order, whatever their quality), so the ablation changes
        which paths train, not how many."""
        out: list[Example] = []
        cap = PathCap(self.cfg.train.max_paths, self.cfg.train.max_paths_per_teacher)
        for p in paths:
            q = questions.get(p.question_id)
            if q is None or (self.opts.filter and not is_kept(p)):
                continue
            if not self.opts.filter and q.split == "train" and not cap.admit(p):
                continue
            out.append(self.path_example(q, p))
        if self.router is not None and out:
            todo = [e for e in out if e.path is not None and e.path.id not in self._emb]
            if todo:
                with main_process_first():  # one writer of the run's embedding cache at a time
                    self._emb.update(embed_paths(self.opts.encoder, self.run.cache / "embeddings", todo))
            if self.opts.router_input == "standardized":
                self.router.fit_input(torch.stack([self._emb[e.path.id] for e in out]))  # type: ignore[union-attr]
        hidden_peer = self.opts.peer and self.opts.peer_mode == "hidden"
        if hidden_peer and self.peer_space.needs_calibration and out:
            states = calibration_states(
                self.students, out, self.opts.calibration_paths, self.cfg.seed, self.cfg.train.max_length
            )
            self.peer_space.calibrate(states)
        return out

    # ------------------------------------------------------------------ training step

    def _gates(self, batch: Batch, training: bool, step: int = 0) -> Gates:
        n, s = len(batch.examples), len(self.students)
        if not self.opts.routing or not training or self.router is None:
            dev = next(iter(batch.inputs.values())).input_ids.device
            return all_open(n, s, dev)
        dev = next(self.router.parameters()).device
        keys = [e.path.id for e in batch.examples]  # type: ignore[union-attr]
        logits = self.router(torch.stack([self._emb[k] for k in keys]).to(dev))
        uniform = path_uniforms(keys, 2 * s, self.cfg.seed, step)
        return sample_gates(logits, self.opts.tau, fallback=self.opts.fallback, uniform=uniform)

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        training = torch.is_grad_enabled()
        n_st = len(self.students)
        peer_on = self.opts.peer and (self.opts.lambda2 > 0 or self.opts.competence_weight > 0)
        if batch.weightless:
            return self._weightless(batch, info, peer_on)
        gates = self._gates(batch, training, info.step)
        hard = gates.hard
        co = hard.sum(dim=1) >= 2 if peer_on else torch.zeros(len(batch.examples), dtype=torch.bool)
        # sharded (FSDP): the same forwards on every process, whatever its shard's gates
        logits_mode = peer_on and self.opts.peer_mode == "logits" and (self.sharded or bool(co.any()))
        ce_all, pooled, full_logits = [], [], []
        for s in range(n_st):
            want_hidden = peer_on and (self.sharded or bool((co & hard[:, s]).any()))
            ce, hid, logits = self._student_losses(batch, s, hard[:, s], want_hidden, logits_mode, training)
            ce_all.append(ce)
            pooled.append(hid)
            if logits is not None:
                full_logits.append(logits)
        ce_mat = torch.stack([c.to(ce_all[0].device) for c in ce_all], dim=1)  # [N, S]
        rows = peer_rows(self, batch, hard, co, ce_all, pooled, full_logits) if peer_on else None
        dev = ce_mat.device
        empty = torch.zeros(0, device=dev)
        stats = reduce_stats(ce_mat, hard, gates.decisions, gates.fallback,
                             (co, rows.mutual if rows else empty, rows.competence if rows else empty))  # fmt: skip
        losses, centred = self._losses(ce_all, gates, stats, training)
        if training:
            self._note_reached(stats)
        total = losses["total"]
        records: dict[str, list[dict[str, Any]]] = {}
        if rows is not None:
            r_g = max(stats.co_rows, 1.0)
            losses["mutual"] = globalise(stats.mutual / r_g, rows.mutual.sum() / r_g, stats.frac)
            losses["competence"] = globalise(stats.competence / r_g, rows.competence.sum() / r_g, stats.frac)
            total = total + self.opts.lambda2 * losses["mutual"] + self.opts.competence_weight * losses["competence"]
            if training and rows.records:
                records["competence"] = rows.records
        losses["total"] = total
        n_pairs = max(stats.n_paths, 1.0) * n_st
        scalars = {"gate_mean": float(stats.n_open.sum()) / n_pairs, "sampled_gate_mean": stats.decisions / n_pairs,
                   "fallback_rate": stats.fallback / max(stats.n_paths, 1.0)}  # fmt: skip
        if training:
            self._diagnose(batch, gates, centred)
            if self.opts.log_routing:
                records["routing"] = self._routing_records(batch, gates, centred)
        return Computed(losses=losses, records=records, scalars=scalars)

    def _losses(
        self, ce_all: list[torch.Tensor], gates: Gates, stats: StepStats, training: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each student's gated loss (global value, local gradient; the router sees its normalised centred loss),
        the entropy term; and the centred losses ``[N, S]`` the router was pushed by (for the diagnostics)."""
        losses: dict[str, torch.Tensor] = {}
        centred = []
        gated = stats.gated_mean()
        for s, st in enumerate(self.students):
            ce = ce_all[s]
            base = stats.ce_mean[s] if self.opts.router_baseline == "batch" else gated[s]
            if self.opts.router_signal == "zscore":
                scale, per = stats.ce_std[s].clamp(min=1e-4), stats.n_paths
            else:
                scale, per = torch.ones((), device=ce.device), float(stats.n_open[s].clamp(min=1.0))
            signal = router_signal(ce, base.to(ce.device), scale.to(ce.device), per)
            centred.append(signal * per)
            local = gated_student_loss(ce, gates.gates[:, s].to(ce.device), stats.n_open[s], signal)
            losses[f"ce/{st.name}"] = globalise(gated[s], local, stats.frac)
        total = sum(losses.values())
        assert isinstance(total, torch.Tensor)
        if self.router is not None and training:
            dec = gates.decisions.to(total.device)
            n_pairs = max(stats.n_paths, 1.0) * len(self.students)
            gbar = (dec.sum() + (stats.decisions - float(dec.detach().sum()))) / n_pairs
            h = entropy_of(gbar)
            losses["entropy"] = globalise(h.detach(), h, stats.frac)
            total = total - self.opts.lambda1 * losses["entropy"]
        losses["total"] = total
        return losses, torch.stack([c.to(total.device) for c in centred], dim=1)

    def _student_losses(
        self, batch: Batch, s: int, col: torch.Tensor, want_hidden: bool, logits_mode: bool, training: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Student ``s``'s loss on every path of the batch: a forward with gradients on the paths it took, and
        (training) the router's view of the others: a no-grad forward or the cached last loss. Also its pooled
        hidden states on its open paths (peer teaching) and, in logits mode, its logits on every path."""
        st = self.students[s]
        inputs = batch.inputs[st.name]
        n = len(batch.examples)
        if logits_mode or bool(col.all()) or not self.opts.routing or self.sharded:
            # one forward of every path: a closed path's loss gets no student gradient (its gate enters detached)
            out = st.forward(inputs, hidden=want_hidden)
            hid = out.hidden
            if hid is not None and not bool(col.all()):  # peer teaching pools the student's open paths only
                hid = hid * col.to(hid.device, hid.dtype)[:, None]
            return out.loss.float(), hid, out.logits if logits_mode else None
        open_idx = col.nonzero().squeeze(1).to(inputs.input_ids.device)
        closed_idx = (~col).nonzero().squeeze(1).to(inputs.input_ids.device)
        ce = torch.zeros(n, device=inputs.input_ids.device)
        hid = None
        if open_idx.numel():
            out = st.forward(slice_inputs(inputs, open_idx), hidden=want_hidden)
            ce = ce.to(out.loss.device).index_put((open_idx.to(out.loss.device),), out.loss.float())
            if out.hidden is not None:
                hid = out.hidden.new_zeros(n, out.hidden.shape[1]).index_put((open_idx.to(out.hidden.device),),
                                                                             out.hidden)  # fmt: skip
        if closed_idx.numel() and training:
            if self.opts.closed_loss == "forward":
                with torch.no_grad():  # the router's gradient needs these losses; the student's does not
                    closed_ce = st.forward(slice_inputs(inputs, closed_idx)).loss.float()
            else:
                closed_ce = self._cached_losses(batch, closed_idx, s, ce[open_idx.to(ce.device)].detach())
            ce = ce.index_put((closed_idx.to(ce.device),), closed_ce.to(ce.device))
        if training and self.opts.closed_loss == "cached":
            self._remember_losses(batch, col, s, ce)
        return ce, hid, None

    def _weightless(self, batch: Batch, info: StepInfo, peer_on: bool) -> Computed:
        """FSDP, an empty shard: every student's forward on the loop's stand-in example (so this process gathers
        the layers the others gather), at zero weight, and the step's collectives with nothing contributed."""
        total = torch.zeros(())
        for st in self.students:
            out = st.forward(batch.inputs[st.name], hidden=peer_on)
            total = total.to(out.loss.device) + out.loss.float().sum() * 0.0
        self.on_empty_shard(info)
        return Computed(losses={"total": total})

    def on_empty_shard(self, info: StepInfo) -> None:
        """Join the batch's collectives from a process whose shard of this micro-batch is empty."""
        dev = next(self.students[0].model.parameters()).device  # where compute()'s statistics live (NCCL: CUDA)
        self._note_reached(empty_stats(len(self.students), dev))
        for part in all_gather_objects(None):
            if part is not None:
                self.diagnostics.add(part)

    def _note_reached(self, stats: StepStats) -> None:
        """Which students took a path of this (global) micro-batch; in logits mode every student's forward on a
        co-routed path carries gradient, as without sharding."""
        self._reached |= stats.n_open.cpu() > 0
        if self.opts.peer and self.opts.peer_mode == "logits" and stats.co_rows > 0:
            self._reached[:] = True

    def idle_students(self) -> list[int]:
        """Sharded: the students no path reached in the step (their gradients are all zero; dropped, as they are
        absent without sharding), unless the step held answer examples, which reach every student. Resets."""
        idle = [s for s in range(len(self.students)) if not self._reached[s]]
        idle = idle if self.sharded and not self.step_answered else []
        self._reached[:] = False
        self.step_answered = False
        return idle

    def _diagnose(self, batch: Batch, gates: Gates, centred: torch.Tensor) -> None:
        """Feed every process's decisions of this step to the diagnostics (so all hold the same)."""
        styles = [ex.path.style if ex.path else ex.kind for ex in batch.examples]
        for part in all_gather_objects(step_part(styles, gates, centred)):
            if part is not None:
                self.diagnostics.add(part)

    def _routing_records(self, batch: Batch, gates: Gates, centred: torch.Tensor) -> list[dict[str, Any]]:
        """Every (path, student) decision of the batch (``log_routing``)."""
        routing = []
        prob, hard_cpu, fb, cen = gates.prob.detach().cpu(), gates.hard.cpu(), gates.fallback.cpu(), centred.cpu()
        for j, ex in enumerate(batch.examples):
            style = ex.path.style if ex.path else ex.kind
            for s, name in enumerate(self.names):
                g = int(hard_cpu[j, s])
                routing.append({
                    "question_id": ex.question.id, "path_id": ex.path.id if ex.path else None,
                    "teacher": ex.path.teacher if ex.path else None, "style": style, "student": name,
                    "gate": g, "prob": round(float(prob[j, s]), 6), "fallback": bool(fb[j]) and g == 1,
                    "centred": round(float(cen[j, s]), 6),
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
            "diagnostics": self.diagnostics.state_dict(),
            "last_ce": [[pid, s, v] for (pid, s), v in self._last_ce.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.diagnostics.load_state_dict(state.get("diagnostics", {}))
        self._last_ce = {(pid, int(s)): float(v) for pid, s, v in state.get("last_ce", [])}

    def on_epoch_end(self, epoch: int) -> dict[str, list[dict[str, Any]]]:
        """The epoch's router diagnostics (per style and per student, see ``diagnostics.py``), then reset; only
        the main process returns them (every process holds the same)."""
        recs = self.diagnostics.records(epoch)
        return {"routing_rates": recs} if recs and is_main_process() else {}
