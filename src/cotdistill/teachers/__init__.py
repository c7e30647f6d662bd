"""Teachers: reasoning styles (prompt templates as data files) and the backends that write paths.

Backends by ``teachers[].backend``: ``openai`` (any OpenAI-compatible server), ``hf`` (a local transformers model)
and whatever a plugin registers through :func:`register_backend` (the lab's ``synthetic``).
"""

from __future__ import annotations

from collections.abc import Callable

from cotdistill.config import TeacherConfig
from cotdistill.errors import CotdistillError
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend

BackendFactory = Callable[[TeacherConfig, int], TeacherBackend]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``backend: NAME`` build a teacher backend with ``factory(teacher_config, seed)``."""
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    """Every backend a teacher config may name."""
    from cotdistill.plugins import load_plugins

    load_plugins()
    return list(_BACKENDS)


def build_backend(cfg: TeacherConfig, seed: int) -> TeacherBackend:
    """The backend a teacher config names."""
    if cfg.backend not in backend_names():
        raise CotdistillError(
            f"teacher '{cfg.name}': unknown backend '{cfg.backend}' (known: {', '.join(backend_names())})"
        )
    return _BACKENDS[cfg.backend](cfg, seed)


def _openai(cfg: TeacherConfig, seed: int) -> TeacherBackend:
    from cotdistill.teachers.openai_backend import OpenAIBackend

    return OpenAIBackend(cfg, seed)


def _hf(cfg: TeacherConfig, seed: int) -> TeacherBackend:
    from cotdistill.teachers.hf_backend import HFBackend

    return HFBackend(cfg, seed)


register_backend("openai", _openai)
register_backend("hf", _hf)

__all__ = ["Completion", "GenRequest", "OnResult", "TeacherBackend", "backend_names", "build_backend",
           "register_backend"]  # fmt: skip
