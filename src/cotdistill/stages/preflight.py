"""The checks a command runs on its config before it saves ``RUN/config.yaml`` or starts any work.

``load_config`` validates every field; these checks are the ones that need more than the config's own text: the
style files exist, the device exists on this machine, the students' model files are there and intact, the method
gets the number of students it needs. They are cheap (no model is loaded), so a bad value fails at once, in one
line, and the previous ``RUN/config.yaml`` is left byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cotdistill.config import RunConfig
from cotdistill.errors import ConfigError


def check_device(spec: str, field: str) -> None:
    """``spec`` names a device this machine has (``auto`` and ``cpu`` always do); a one-line error otherwise."""
    if spec in ("auto", "cpu"):
        return
    import torch

    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{field}: unknown device '{spec}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{field}: '{spec}' but CUDA is not available on this machine (use auto or cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{field}: '{spec}' but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{field}: '{spec}' but MPS is not available on this machine (use auto or cpu)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{field}: unsupported device '{spec}' (use auto, cpu, cuda or cuda:N)")


def _generate(cfg: RunConfig) -> None:
    from cotdistill.teachers.openai_backend import resolve_api_key
    from cotdistill.teachers.styles import select_styles

    if not cfg.teachers:
        if cfg.questions.source == "imported":
            return  # the imported paths are the run's paths (the stage checks they exist)
        raise ConfigError("no teachers configured: add a 'teachers:' list to the config (see README, generate)")
    select_styles(cfg.generate.styles, cfg.generate.style_dirs)
    for t in cfg.teachers:
        if t.backend == "openai":
            resolve_api_key(t)  # the variable api_key_env names is set (the key itself is never kept here)


def _filter(cfg: RunConfig) -> None:
    if cfg.filter.consensus.enabled:
        check_device(cfg.filter.consensus.device, "filter.consensus.device")


def _students(cfg: RunConfig) -> None:
    from cotdistill.students.build import check_student_source

    for sc in cfg.students:
        check_student_source(sc)


def _method(cfg: RunConfig) -> None:
    from cotdistill.training.methods.registry import method_spec

    cls = method_spec(cfg.train.method).load()
    n, lo, hi = len(cfg.students), cls.min_students, cls.max_students
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if hi == lo else f"{lo}..{hi if hi is not None else 'any'}"
        raise ConfigError(f"method '{cfg.train.method}' needs {want} student(s) in the config's students list, got {n}")


def _eval(cfg: RunConfig) -> None:
    check_device(cfg.eval.device, "eval.device")


CHECKS: dict[str, Callable[[RunConfig], None]] = {
    "generate": _generate,
    "filter": _filter,
    "students": _students,
    "method": _method,
    "eval": _eval,
}
# what each stage command checks; "run" checks the stages it will reach (:func:`for_stages`), "bench" trains each
# method on its own students (so it does not check the config's method against them)
FOR_COMMAND: dict[str, tuple[str, ...]] = {
    "generate": ("generate",),
    "filter": ("filter",),
    "train": ("students", "method"),
    "eval": ("eval",),
    "demo": tuple(CHECKS),
    "bench": ("generate", "filter", "students", "eval"),
}


def for_stages(until: str | None) -> tuple[str, ...]:
    """The checks of every pipeline stage up to ``until`` (all of them when None)."""
    from cotdistill.stages.pipeline import STAGE_NAMES

    stages = STAGE_NAMES[: STAGE_NAMES.index(until) + 1] if until in STAGE_NAMES else STAGE_NAMES
    return tuple(c for st in stages for c in FOR_COMMAND.get(st, ()))


def preflight(cfg: RunConfig, checks: Iterable[str]) -> None:
    """Run the named checks (keys of :data:`CHECKS`) on ``cfg``; the first failure raises its one-line error."""
    for name in checks:
        CHECKS[name](cfg)
