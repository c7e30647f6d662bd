"""Stage entry points shared by the CLI and ``cotdistill run``: each reads and writes run-directory files."""

from __future__ import annotations

from pathlib import Path

from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.rundir import RunDir
from cotdistill.sources import load_source


def write_questions(cfg: RunConfig, out_dir: str | Path | None = None) -> dict[str, int]:
    """Write the configured questions (all splits) atomically to ``questions.jsonl``; returns counts per split."""
    run = RunDir.at(out_dir or cfg.resolved_run_dir()).ensure()
    qc = cfg.questions
    counts = {"train": qc.train, "dev": qc.dev, "test": qc.test}
    made: dict[str, int] = {}

    def counted():
        for q in load_source(qc.source, counts, cfg.seed, qc.task, qc.fields, qc.options):
            made[q.split] = made.get(q.split, 0) + 1
            yield q

    atomic_write_jsonl(run.questions, counted())
    return made


def resolve_run(
    run_dir: str | Path | None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    lock: str | None = None,
) -> tuple[RunDir, RunConfig]:
    """The run directory and its config, as every stage command sees them.

    With ``config`` given, that file (plus overrides) is validated and saved as ``RUN/config.yaml``;
    without it, ``RUN/config.yaml`` is used when it exists, else the built-in defaults.
    With ``lock`` (the command's name), the run directory's lock is taken before anything is written
    (see lock.py): a second process on the same run refuses instead of interleaving writes.
    """
    from cotdistill.config import dump_config, load_config
    from cotdistill.io import atomic_write_text

    if config is None and run_dir is not None and RunDir.at(run_dir).config.exists():
        config = RunDir.at(run_dir).config
    cfg = load_config(config, overrides)
    run = RunDir.at(run_dir or cfg.resolved_run_dir()).ensure()
    if lock is not None:
        from cotdistill.lock import acquire_run_lock

        acquire_run_lock(run.root, lock)
    if config is None or Path(config).resolve() != run.config.resolve() or overrides:
        atomic_write_text(run.config, dump_config(cfg))
    return run, cfg
