"""The run directory layout: the one place that names every file a stage reads or writes (see the README's
"Data formats" and DESIGN.md). Stages and the report go through these names; nobody builds a run path by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """Paths inside ``runs/<name>/``."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> RunDir:
        return cls(Path(root))

    def ensure(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    # ---- data stages
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def questions(self) -> Path:
        return self.root / "questions.jsonl"

    @property
    def paths(self) -> Path:
        return self.root / "paths.jsonl"

    @property
    def filtered(self) -> Path:
        return self.root / "filtered.jsonl"

    @property
    def filter_stats(self) -> Path:
        return self.root / "filter_stats.json"

    # ---- caches
    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def generate_cache(self) -> Path:
        return self.cache / "generate.jsonl"

    @property
    def judge_cache(self) -> Path:
        return self.cache / "judge_verdicts.jsonl"

    @property
    def embeddings_cache(self) -> Path:
        return self.cache / "embeddings"

    @property
    def tokenizers_cache(self) -> Path:
        return self.cache / "tokenizers"

    # ---- training
    @property
    def students(self) -> Path:
        return self.root / "students"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        """``RUN/logs/<name>.jsonl``: train_metrics, dev, routing, routing_rates, competence, compact_weights..."""
        return self.logs / f"{name}.jsonl"

    @property
    def train_summary(self) -> Path:
        return self.logs / "train_summary.json"

    @property
    def generate_failures(self) -> Path:
        return self.logs / "generate_failures.jsonl"

    # ---- evaluation, report, bench, pipeline
    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def metrics(self) -> Path:
        return self.eval / "metrics.json"

    @property
    def outputs(self) -> Path:
        return self.eval / "outputs.jsonl"

    @property
    def ensembles(self) -> Path:
        return self.eval / "ensembles.jsonl"

    @property
    def base_outputs(self) -> Path:
        """The starting points' answers on the eval split (the base rows' records)."""
        return self.eval / "base_outputs.jsonl"

    @property
    def probe_outputs(self) -> Path:
        """Every answer on every probe, before (``base``) and after (``distilled``) training."""
        return self.eval / "probe_outputs.jsonl"

    @property
    def base_cache(self) -> Path:
        return self.eval / "base"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_files(self) -> Path:
        return self.root / "report_files"

    @property
    def bench_json(self) -> Path:
        return self.root / "bench.json"

    def bench_cell(self, variant: str, students: str, seed: int) -> RunDir:
        """The run directory of one bench cell: ``RUN/bench/<variant>/<students>/seed<k>/``."""
        return RunDir(self.root / "bench" / variant / students / f"seed{seed}")

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stamp(self, stage: str) -> Path:
        """``RUN/stages/<stage>.json``: written when the stage finished (``cotdistill run`` skips current ones)."""
        return self.stages / f"{stage}.json"

    def started(self, stage: str) -> Path:
        """``RUN/stages/<stage>.started``: the fingerprint of the stage's unfinished attempt."""
        return self.stages / f"{stage}.started"
