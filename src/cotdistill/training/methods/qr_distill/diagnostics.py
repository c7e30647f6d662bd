"""QR-Distill's router diagnostics per epoch (``logs/routing_rates.jsonl``): is the router learning its signal?

Per (style, student): the selection rate with fallbacks (the gates as trained) and without them (the router's own
decisions), and how many of its gates were fallbacks. Per student: mean and std of the gate's opening probability
``sigmoid(logit)``, both selection rates, its share of the fallbacks, the share of paths that fell back, and the
Spearman correlation between a gate's probability and the student's centred loss on the path (what the router's
gradient pushes it by): negative when the router learned to open the gates of paths below the student's average,
about 0 for coin flips. Every process is fed the whole global batch's decisions, so every process holds the same
diagnostics (the checkpoint saves the main process's).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant or too short."""
    if len(x) < 3:
        return None
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if float(np.std(rx)) == 0.0 or float(np.std(ry)) == 0.0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


class RoutingDiagnostics:
    """Accumulates one epoch of routing decisions; :meth:`records` gives the epoch's lines, then resets."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.reset()

    def reset(self) -> None:
        self.styles: list[str] = []  # per path
        self.fallback: list[bool] = []  # per path: no gate of the router's own opened
        self.prob: list[list[float]] = []  # per path, per student
        self.gate: list[list[int]] = []  # after the fallback rule
        self.own: list[list[int]] = []  # the router's own decisions
        self.centred: list[list[float]] = []

    def add(self, part: dict[str, Any]) -> None:
        """One process's share of a step (see :func:`step_part`); call with every process's, in rank order."""
        for k in ("styles", "fallback", "prob", "gate", "own", "centred"):
            getattr(self, k).extend(part[k])

    def _student(self, epoch: int, s: int, name: str) -> dict[str, Any]:
        prob = np.asarray([p[s] for p in self.prob], dtype=np.float64)
        gate = np.asarray([g[s] for g in self.gate], dtype=np.float64)
        own = np.asarray([g[s] for g in self.own], dtype=np.float64)
        fb = np.asarray(self.fallback, dtype=bool)
        rho = spearman(prob, np.asarray([c[s] for c in self.centred], dtype=np.float64))
        n_fb = int(fb.sum())
        return {
            "kind": "student", "epoch": epoch, "student": name, "n": len(prob),
            "prob_mean": round(float(prob.mean()), 6), "prob_std": round(float(prob.std()), 6),
            "rate": round(float(gate.mean()), 6), "rate_no_fallback": round(float(own.mean()), 6),
            "fallback_share": round(float(gate[fb].sum() / n_fb), 6) if n_fb else None,
            "fallback_rate": round(n_fb / len(prob), 6), "spearman": None if rho is None else round(rho, 6),
        }  # fmt: skip

    def records(self, epoch: int) -> list[dict[str, Any]]:
        """Per (style, student) and per student lines for ``epoch``; empty when nothing was routed. Resets."""
        if not self.prob:
            return []
        out: list[dict[str, Any]] = []
        styles = np.asarray(self.styles)
        fb = np.asarray(self.fallback, dtype=bool)
        for style in sorted(set(self.styles)):
            rows = styles == style
            for s, name in enumerate(self.names):
                gate = np.asarray([g[s] for g in self.gate])[rows]
                own = np.asarray([g[s] for g in self.own])[rows]
                out.append({
                    "kind": "style", "epoch": epoch, "style": style, "student": name, "n": int(rows.sum()),
                    "rate": round(float(gate.mean()), 6), "rate_no_fallback": round(float(own.mean()), 6),
                    "fallbacks": int((gate.astype(bool) & fb[rows]).sum()),
                })  # fmt: skip
        out += [self._student(epoch, s, name) for s, name in enumerate(self.names)]
        self.reset()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {k: list(getattr(self, k)) for k in ("styles", "fallback", "prob", "gate", "own", "centred")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset()
        if state:
            self.add(state)


def step_part(styles: list[str], gates: Any, centred: Any) -> dict[str, Any]:
    """This process's decisions of one step as plain lists (``gates``: :class:`router.Gates`, ``centred`` [N, S])."""
    return {
        "styles": list(styles),
        "fallback": gates.fallback.detach().cpu().tolist(),
        "prob": gates.prob.detach().float().cpu().tolist(),
        "gate": gates.hard.cpu().int().tolist(),
        "own": gates.own.cpu().int().tolist(),
        "centred": centred.detach().float().cpu().tolist(),
    }
