"""Typed result files shared by the stage that writes them and the report that reads them, so both sides agree
on every key: ``bench.json`` (methods x students x seeds)."""

from __future__ import annotations

import statistics

from pydantic import BaseModel, ConfigDict, Field


class BenchRow(BaseModel):
    """One row of the bench: a method (variant) on one student, one accuracy per seed, in a table ``group``."""

    model_config = ConfigDict(extra="ignore")

    method: str
    student: str
    accuracies: list[float] = Field(default_factory=list, description="fractions in [0, 1], one per seed")
    group: str = Field("main", description="the report renders one table per group (main, ablations...)")
    extras: dict[str, list[float]] = Field(
        default_factory=dict, description="more per-seed figures: no_answer_rate, truncation_rate, probe/<name>"
    )

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies) if self.accuracies else float("nan")

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def mean_std(self, pm: str = "±") -> str:
        """Mean and sample std in %, ``"15.0 ± 7.1"``; one seed has no spread, so ``"15.0 (one seed)"``."""
        if len(self.accuracies) < 2:
            return f"{100 * self.mean:.1f} (one seed)"
        return f"{100 * self.mean:.1f} {pm} {100 * self.std:.1f}"

    @property
    def per_seed(self) -> str:
        """Each seed's accuracy in %, in seed order: ``"10.0, 20.0"`` (the bench's tables print it beside the mean)."""
        return ", ".join(f"{100 * a:.1f}" for a in self.accuracies)


class BenchResult(BaseModel):
    """``RUN/bench.json``: the seeds, the rows and how long the bench took; rewritten after every cell, so a long
    bench can be read (and reported) while it runs: ``cells_done < cells_total`` marks a partial table."""

    model_config = ConfigDict(extra="ignore")

    seeds: list[int] = Field(default_factory=list)
    seconds: float = 0.0
    rows: list[BenchRow] = Field(default_factory=list)
    cells_done: int = Field(0, description="bench cells (variant x students x seed) whose figures are in the rows")
    cells_total: int = Field(0, description="cells the bench command asked for; 0 in files written before it")

    @property
    def partial(self) -> bool:
        return self.cells_done < self.cells_total

    def groups(self) -> dict[str, list[BenchRow]]:
        """Rows by group, groups in order of first appearance."""
        out: dict[str, list[BenchRow]] = {}
        for r in self.rows:
            out.setdefault(r.group, []).append(r)
        return out

    def dump(self) -> str:
        """The JSON text of ``bench.json`` (each row also carries its mean and std, for readers without the model)."""
        import json

        data = self.model_dump(mode="json")
        for row, r in zip(data["rows"], self.rows, strict=True):
            row.update(mean=r.mean, std=r.std)
        return json.dumps(data, indent=2) + "\n"
