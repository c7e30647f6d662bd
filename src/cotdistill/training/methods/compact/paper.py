"""COMPACT as the paper draws it (METHODS.md §2a-§2e): one training forward gives every branch's loss, hidden
states and answer distributions; S_MI, S_cons and S_PPL are z-scored over the question's branches and fused into
detached weights ``alpha``; each branch's loss ``L_k = L_SFT,k + lambda L_MCon,k`` is weighted by them.

Normalisation: branch k of question q is multiplied by ``N_q * alpha_k`` (``N_q`` = the question's branches in the
batch) and the batch takes the mean over examples, so uniform weights with equal branch counts per teacher are
exactly the uniform union (``sft-multi``'s mean over paths) and one branch per question is exactly SFT.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

from cotdistill.training.methods.base import Batch, Computed, StepInfo, StudentOutput
from cotdistill.training.methods.compact.branches import (
    Branch,
    answer_logprobs,
    batch_branches,
    continuations,
    gold_vectors,
)
from cotdistill.training.methods.compact.sharded import most_across, stand_in_forwards
from cotdistill.training.methods.compact.signals import consensus, information_gain, mcon
from cotdistill.training.methods.compact.weights import (
    branch_softmax,
    in_warmup,
    teacher_shares,
    weight_entropy,
    zscore,
)

if TYPE_CHECKING:
    from cotdistill.training.methods.compact.method import CompactMethod

SIGNALS = ("S_MI", "S_cons", "S_PPL")


def _mean(xs: list[float]) -> float | None:
    vals = [x for x in xs if math.isfinite(x)]
    return sum(vals) / len(vals) if vals else None


def _groups(branches: list[Branch]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for b in branches:
        out[b.qid].append(b.row)
    return out


def _info_gain(m: CompactMethod, batch: Batch, out: StudentOutput, branches: list[Branch]) -> torch.Tensor:
    """S_MI per branch (NaN where the gold representation or the rationale's tokens are missing)."""
    student, o = m.students[0], m.opts
    res = torch.full((len(branches),), math.nan, dtype=torch.float64)
    firsts = {}
    for ex in batch.examples:
        firsts.setdefault(ex.question.id, (ex.prompt, ex.question))
    gold = gold_vectors(student, list(firsts.values()), m.tokens, sharded=m.sharded)
    states = out.states.detach().float().cpu()
    for b in branches:
        a = gold.get(b.qid)
        first, n = b.skip, len(b.tokens.ids)  # the target's tokens j >= skip sit at start + j, contiguous
        if a is None or b.start is None or n - first < 2:
            continue
        h = states[b.row, b.start + first : b.start + n]
        mask = torch.tensor(b.tokens.content[first:]) if o.semantic_mask else torch.ones(n - first, dtype=torch.bool)
        res[b.row] = information_gain(h, a, mask, o.mi_estimator)
    return res


def _consensus(
    m: CompactMethod, out: StudentOutput, branches: list[Branch], groups: dict[str, list[int]]
) -> torch.Tensor:
    """S_cons per branch from the last-token features of the question's rationales (NaN where missing)."""
    res = torch.full((len(branches),), math.nan, dtype=torch.float64)
    states = out.states.detach().float()
    proj = m.projection(states.shape[-1])
    which = "last_content" if m.opts.cons_feature == "content" else "last"
    for idx in groups.values():
        tok = {i: getattr(branches[i].tokens, which) for i in idx}
        last = {i: branches[i].pos(t) for i, t in tok.items() if t is not None}
        have = [i for i, p in last.items() if p is not None]
        if not have:
            continue
        v = torch.stack([states[i, last[i]] for i in have])
        res[torch.tensor(have)] = consensus(v, proj)
    return res


def _mcon(
    m: CompactMethod, out: StudentOutput, branches: list[Branch], groups: dict[str, list[int]]
) -> tuple[torch.Tensor, list[bool]]:
    """L_MCon per branch (differentiable), and whether each branch had an answer distribution and partners."""
    student = m.students[0]
    zero = out.loss.sum() * 0.0
    vals: list[torch.Tensor] = [zero] * len(branches)
    has = [False] * len(branches)
    multi = [b for b in branches if len(groups[b.qid]) > 1]
    # sharded: as many continuation forwards as the process that runs the most (sharded.py)
    stand_ins = most_across(n := continuations(out, multi), out.logits.device) - n if m.sharded else 0
    answers = dict(zip((b.row for b in multi), answer_logprobs(student, out, multi), strict=True))
    extra = stand_in_forwards(student, stand_ins, out.logits.device) if stand_ins else zero
    for idx in groups.values():
        if len(idx) < 2:
            continue
        mine = [answers[i] for i in idx]
        n_have = sum(a is not None for a in mine)
        for i, v, a in zip(idx, mcon(mine, zero), mine, strict=True):
            vals[i] = v
            has[i] = a is not None and n_have > 1
    return torch.stack(vals) + extra, has


def _signals(
    m: CompactMethod, batch: Batch, out: StudentOutput, branches: list[Branch], groups: dict[str, list[int]]
) -> dict[str, torch.Tensor]:
    """The three signals per branch (NaN where a switch is off or a value is missing), S_PPL EMA-smoothed if asked."""
    o, b = m.opts, len(branches)
    nan = torch.full((b,), math.nan, dtype=torch.float64)
    d = out.loss.detach().double().cpu()
    if o.ppl_ema:
        d = torch.tensor([m.ema.smoothed(br.teacher, float(d[br.row])) for br in branches], dtype=torch.float64)
    return {
        "S_MI": _info_gain(m, batch, out, branches) if o.use_mi else nan,
        "S_cons": _consensus(m, out, branches, groups) if o.use_cons else nan,
        "S_PPL": d if o.use_ppl else nan.clone(),
    }


def _fuse(
    m: CompactMethod, sig: dict[str, torch.Tensor], branches: list[Branch], idx: list[int], warm: bool
) -> torch.Tensor:
    """``alpha`` over one question's branches: ``softmax((b1 z(S_MI) + b2 z(S_cons) - b3 z(S_PPL)) / tau)`` with
    each teacher's weight split over its branches; uniform during warm-up."""
    o = m.opts
    t = torch.tensor(idx)
    score = torch.zeros(len(idx), dtype=torch.float64)
    for name, beta, sign in (("S_MI", o.beta1, 1.0), ("S_cons", o.beta2, 1.0), ("S_PPL", o.beta3, -1.0)):
        if beta:
            score += sign * beta * zscore(sig[name][t])
    return branch_softmax(score, [branches[i].teacher for i in idx], o.tau, uniform=warm)


def compute_paper(m: CompactMethod, batch: Batch, info: StepInfo) -> Computed:
    """One batch of the paper variant: losses, per-(question, teacher) records and per-teacher scalars."""
    student, o = m.students[0], m.opts
    branches = batch_branches(student, batch, m.tokens)
    groups = _groups(branches)
    use_mcon = o.use_mcon and o.lambda_mcon > 0
    need_cache = use_mcon and any(b.tokens.answer is None and b.tokens.closed_ids for b in branches)
    out = student.forward(batch.inputs[student.name], states=True, cache=need_cache)
    sig = _signals(m, batch, out, branches, groups)
    if use_mcon:
        l_mcon, has_mcon = _mcon(m, out, branches, groups)
    else:
        l_mcon, has_mcon = out.loss.detach() * 0.0, [False] * len(branches)
    warm = in_warmup(info.step, info.total_steps, o.warmup_ratio)
    mult = torch.zeros(len(branches), dtype=torch.float64)
    records: list[dict[str, Any]] = []
    seen: dict[str, list[float]] = defaultdict(list)
    entropies = []
    mcon_of = l_mcon.detach().double().cpu().tolist()
    loss_of = out.loss.detach().double().cpu().tolist()
    for qid, idx in groups.items():
        alpha = _fuse(m, sig, branches, idx, warm)
        mult[torch.tensor(idx)] = len(idx) * alpha
        teachers = [branches[i].teacher for i in idx]
        shares = teacher_shares(alpha, teachers)
        entropies.append(weight_entropy(torch.tensor(list(shares.values()), dtype=torch.float64)))
        for t, w in shares.items():
            mine = [i for i in idx if branches[i].teacher == t]
            rec: dict[str, Any] = {"question_id": qid, "teacher": t, "weight": w, "branches": len(mine)}
            for name in SIGNALS:
                rec[name] = _mean([float(sig[name][i]) for i in mine])
            rec["L_MCon"] = _mean([mcon_of[i] for i in mine if has_mcon[i]])
            records.append(rec)
            seen[t].append(sum(loss_of[i] for i in mine) / len(mine))
    if o.ppl_ema and not batch.weightless:  # an empty shard's stand-in example is no observation
        m.ema.observe(seen)
    scale = mult.to(out.loss.device, out.loss.dtype)
    sft = (out.loss * scale).sum() / len(branches)
    consistency = (l_mcon * scale).sum() / len(branches)
    total = sft + o.lambda_mcon * consistency if use_mcon else sft
    losses = {"total": total, f"ce/{student.name}": out.loss.detach().mean(), "sft": sft.detach()}
    if use_mcon:
        losses["mcon"] = consistency.detach()
    scalars = {"compact/weight_entropy": sum(entropies) / len(entropies), "compact/warmup": float(warm)}
    scalars.update(_teacher_scalars(records))
    return Computed(losses=losses, records={"compact_weights": records}, scalars=scalars)


def _teacher_scalars(records: list[dict[str, Any]]) -> dict[str, float]:
    """Per teacher, the batch mean of its weight, signals and L_MCon (``compact/<name>/<teacher>``)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for name in ("weight", *SIGNALS, "L_MCon"):
            v = r.get(name)
            if v is not None:
                acc[f"compact/{name}/{r['teacher']}"].append(float(v))
    return {k: sum(v) / len(v) for k, v in acc.items()}
