"""How a stage command finds its run directory and config (shared by the CLI's commands and ``cotdistill run``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cotdistill.config import RunConfig, dump_config, load_config
from cotdistill.io import atomic_write_text
from cotdistill.lock import acquire_run_lock, launched_rank_zero
from cotdistill.rundir import RunDir


def resolve_run(
    run_dir: str | Path | None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    lock: str | None = None,
    checks: Iterable[str] | None = None,
    flags: dict[str, str] | None = None,
) -> tuple[RunDir, RunConfig]:
    """The run directory and its config, as every stage command sees them.

    With ``config`` given, that file (plus overrides) is validated and saved as ``RUN/config.yaml``;
    without it, ``RUN/config.yaml`` is used when it exists, else the built-in defaults.
    The config is saved only once it is valid and has passed the command's pre-flight checks (``checks``: names
    from :mod:`cotdistill.stages.preflight`, default those of the command ``lock`` names), and once the lock is
    held: a command that fails validation leaves the run directory, its ``config.yaml`` included, as it was.
    With ``lock`` (the command's name), the run directory's lock is taken before anything is written
    (see lock.py): a second process on the same run refuses instead of interleaving writes. Under ``torchrun`` /
    ``accelerate launch`` only rank 0 saves the config (the ranks are one command; two writers would race).
    ``flags`` maps a dotted key to the CLI option that produced its override (errors name the option).
    """
    from cotdistill.stages.preflight import FOR_COMMAND, preflight

    if config is None and run_dir is not None and RunDir.at(run_dir).config.exists():
        config = RunDir.at(run_dir).config
    cfg = load_config(config, overrides, flags)
    preflight(cfg, checks if checks is not None else FOR_COMMAND.get(lock or "", ()))
    run = RunDir.at(run_dir or cfg.resolved_run_dir()).ensure()
    if lock is not None:
        acquire_run_lock(run.root, lock)
    if launched_rank_zero() and (config is None or Path(config).resolve() != run.config.resolve() or overrides):
        atomic_write_text(run.config, dump_config(cfg))
    return run, cfg
