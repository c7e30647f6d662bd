"""COMPACT's weight log read back (METHODS.md §2e): the per-teacher trajectory and its plot, mean weights per group of
questions (e.g. corrupted / clean), and the share of questions on which each teacher has the top weight."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from cotdistill.errors import InputError


def weight_trajectory(log: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``teacher -> [(step, mean weight over that step's questions)]`` from ``RUN/logs/compact_weights.jsonl``."""
    p = Path(log)
    if not p.exists():
        raise InputError(p, "file not found (train with --method compact first)")
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                sums[r["teacher"]][int(r["step"])].append(float(r["weight"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise InputError(p, f"bad compact_weights record ({type(e).__name__}: {e})", line=lineno) from None
    return {t: [(s, sum(ws) / len(ws)) for s, ws in sorted(by_step.items())] for t, by_step in sorted(sums.items())}


def moving_average(xs: list[float], k: int) -> list[float]:
    """Trailing mean of ``xs`` over ``k`` values (fewer at the start): a per-step weight over a few questions per
    step is too noisy to read as a trajectory."""
    k = max(1, k)
    out, total = [], 0.0
    for i, x in enumerate(xs):
        total += x - (xs[i - k] if i >= k else 0.0)
        out.append(total / min(i + 1, k))
    return out


def plot_weight_trajectory(log: str | os.PathLike, out: str | os.PathLike, smooth: int = 5) -> Path:
    """A PNG of each teacher's mean weight per step (moving average over ``smooth`` steps), with the 1/K line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traj = weight_trajectory(log)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for teacher, pts in traj.items():
        steps = [s for s, _ in pts]
        ws = [w for _, w in pts]
        ax.plot(steps, moving_average(ws, smooth), label=teacher)
    if traj:
        ax.axhline(1 / len(traj), color="grey", linestyle="--", linewidth=1, label=f"1/K = 1/{len(traj)}")
    ax.set_xlabel("step")
    ax.set_ylabel("mean weight")
    ax.set_title("COMPACT: per-teacher weight")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _records(log: str | os.PathLike) -> list[dict]:
    p = Path(log)
    if not p.exists():
        raise InputError(p, "file not found (train with --method compact first)")
    out = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    r = json.loads(line)
                    out.append({"step": int(r["step"]), "question_id": str(r["question_id"]),
                                "teacher": str(r["teacher"]), "weight": float(r["weight"])})  # fmt: skip
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise InputError(p, f"bad compact_weights record ({type(e).__name__}: {e})", line=lineno) from None
    return out


def mean_weights(
    log: str | os.PathLike, groups: dict[str, str] | None = None, from_step: int = 0
) -> dict[str, dict[str, float]]:
    """``group -> teacher -> mean weight`` over the logged (question, teacher) records from ``from_step`` on;
    ``groups`` maps a question id to its group (e.g. "corrupted" / "clean"); unlisted questions go to "other",
    and every record also counts in "all"."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _records(log):
        if r["step"] < from_step:
            continue
        acc["all"][r["teacher"]].append(r["weight"])
        if groups is not None:
            acc[groups.get(r["question_id"], "other")][r["teacher"]].append(r["weight"])
    return {g: {t: sum(ws) / len(ws) for t, ws in sorted(d.items())} for g, d in acc.items()}


def top_weight_share(log: str | os.PathLike, from_step: int = 0) -> dict[str, float]:
    """Per teacher, the share of (step, question) decisions in which it has the top weight (ties split evenly)."""
    by_q: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
    for r in _records(log):
        if r["step"] >= from_step:
            by_q[(r["step"], r["question_id"])][r["teacher"]] = r["weight"]
    wins: dict[str, float] = defaultdict(float)
    for ws in by_q.values():
        best = max(ws.values())
        top = [t for t, w in ws.items() if w >= best - 1e-12]
        for t in ws:
            wins[t] += 0.0
        for t in top:
            wins[t] += 1.0 / len(top)
    n = max(1, len(by_q))
    return {t: v / n for t, v in sorted(wins.items())}
