"""How a stage command finds its run directory and config (shared by the CLI's commands and ``cotdistill run``)."""

from __future__ import annotations

from pathlib import Path

from cotdistill.config import RunConfig
from cotdistill.configfile import dump_config, load_config
from cotdistill.io import atomic_write_text
from cotdistill.rundir import RunDir


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
