"""COMPACT's per-teacher weight trajectory (METHODS.md §2e): mean weight per teacher per step, from the log."""

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
        k = max(1, smooth)
        avg = [sum(ws[max(0, i - k + 1) : i + 1]) / len(ws[max(0, i - k + 1) : i + 1]) for i in range(len(ws))]
        ax.plot(steps, avg, label=teacher)
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
