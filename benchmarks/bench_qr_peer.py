"""Does QR-Distill's peer teaching carry information? ``L_mutual`` on copies, gradient ratios, competence targets.

1. ``copies``: two copies of one tiny model, every path to both (``routing: false``): ``L_mutual`` at step 0 per
   projection mode (METHODS.md §1d: identical students must have 0).
2. ``ratio``: the planted pair of ``bench_qr_router.py`` (a GPT-2 and a Llama, each warmed up on its own style)
   and the same pair fresh: per student ``lambda2 * |grad L_mutual| / |grad CE|`` over its parameters and
   ``L_mutual``, at step 0 and after a few joint steps, per projection mode.
3. ``competence``: the competence target ``softmax_s(-CE_s / T)`` on the planted pair with per-token and per-byte
   losses: how far from uniform it is (mean |target_0 - 1/2|) and how often it names the student warmed up on
   the path's style.

    PYTHONPATH=src python benchmarks/bench_qr_peer.py
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from bench_qr_router import _planted_students  # noqa: E402
from cotdistill.config import RunConfig  # noqa: E402
from cotdistill.rundir import RunDir  # noqa: E402
from cotdistill.training.methods.base import StepInfo  # noqa: E402
from cotdistill.training.methods.qr_distill.method import QRDistill  # noqa: E402
from qr_students import PLANTED, TinyStudent, make_batch, make_model, make_tokenizer, planted_data  # noqa: E402


def _method(tmp: Path, students: list, **opts) -> QRDistill:
    cfg = RunConfig(seed=0, prompt="bare", train={"method": "qr-distill", "options": opts})
    return QRDistill(cfg, students, RunDir.at(tmp))


def copies(tmp: Path) -> list[dict]:
    questions, paths = planted_data()
    tok = make_tokenizer(300)
    base = TinyStudent("a", make_model("gpt2", tok, seed=0, d=32), tok)
    out = []
    for mode in ("random", "shared", "fitted"):
        twin = TinyStudent("b", copy.deepcopy(base.model), tok)
        m = _method(tmp, [base, twin], routing=False, projection=mode)
        ex = m.examples(questions, paths)
        with torch.enable_grad():
            res = m.compute(make_batch([base, twin], ex[:24]), StepInfo(0, 0, 1))
        out.append({"part": "copies", "projection": mode, "mutual": round(float(res.losses["mutual"].detach()), 6)})
    return out


def _ratios(m: QRDistill, students: list, batch) -> dict:
    res = m.compute(batch, StepInfo(0, 0, 1))
    row = {"mutual": round(float(res.losses["mutual"].detach()), 4)}
    for st in students:
        params = [p for p in st.model.parameters() if p.requires_grad]
        g_ce = torch.autograd.grad(res.losses[f"ce/{st.name}"], params, retain_graph=True, allow_unused=True)
        g_mu = torch.autograd.grad(m.opts.lambda2 * res.losses["mutual"], params, retain_graph=True, allow_unused=True)
        n_ce = torch.sqrt(sum((g**2).sum() for g in g_ce if g is not None))
        n_mu = torch.sqrt(sum((g**2).sum() for g in g_mu if g is not None))
        row[f"ratio/{st.name}"] = round(float(n_mu / n_ce), 4)
    return row


def ratio(tmp: Path, steps: int) -> list[dict]:
    from qr_students import run_method

    questions, paths, warmed = _planted_students(0)
    fresh = []
    for i, kind in enumerate(["gpt2", "llama"]):
        tok = make_tokenizer(300 + 40 * i)
        fresh.append(TinyStudent(f"s{i}-{kind}", make_model(kind, tok, seed=i, d=32), tok))
    out = []
    for label, pair in (("warmed", warmed), ("fresh", fresh)):
        for mode in ("random", "shared", "fitted"):
            students = copy.deepcopy(pair)
            m = _method(tmp, students, routing=False, projection=mode)
            ex = m.examples(questions, paths)
            batch = make_batch(students, ex[:24])
            out.append({"part": "ratio", "pair": label, "projection": mode, "step": 0, **_ratios(m, students, batch)})
            run_method(m, students, ex, epochs=max(1, steps * 12 // len(ex)))
            out.append({"part": "ratio", "pair": label, "projection": mode, "step": "after",
                        **_ratios(m, students, batch)})  # fmt: skip
    return out


def competence(tmp: Path) -> list[dict]:
    from cotdistill.training.methods.qr_distill.peer import competence_target, per_byte

    questions, paths, students = _planted_students(0)
    m = _method(tmp, students, routing=False)
    ex = m.examples(questions, paths)
    batch = make_batch(students, ex)
    with torch.no_grad():
        ce = torch.stack([st.forward(batch.inputs[st.name]).loss for st in students], dim=1)
    n_bytes = torch.tensor([len(e.target.encode()) for e in ex])
    tok = torch.stack([(batch.inputs[st.name].labels != -100).sum(1) for st in students], dim=1)
    pb = torch.stack([per_byte(ce[:, s], tok[:, s], n_bytes) for s in range(2)], dim=1)
    best = torch.tensor([PLANTED.index(e.path.style) if e.path.style in PLANTED else -1 for e in ex])
    mask = torch.ones(len(ex), 2, dtype=torch.bool)
    out = []
    for scale, vals in (("token", ce), ("byte", pb)):
        for t in (1.0, 0.3, 0.1, 0.03):
            tgt = competence_target(vals, mask, t)
            planted = best >= 0
            right = (tgt[planted].argmax(1) == best[planted]).float().mean()
            out.append({"part": "competence", "scale": scale, "T": t,
                        "mean_abs_from_half": round(float((tgt[:, 0] - 0.5).abs().mean()), 4),
                        "names_planted_student": round(float(right), 4)})  # fmt: skip
    return out


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for row in copies(Path(tmp)) + competence(Path(tmp)) + ratio(Path(tmp), steps=24):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
