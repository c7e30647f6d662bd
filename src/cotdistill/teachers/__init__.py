"""Teachers: reasoning styles (prompt templates as data files) and the backends that write paths."""

from __future__ import annotations

from cotdistill.config import TeacherConfig
from cotdistill.errors import CotdistillError
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend


def build_backend(cfg: TeacherConfig, seed: int) -> TeacherBackend:
    """The backend a teacher config names: ``openai``, ``hf`` or ``synthetic`` (imported lazily)."""
    if cfg.backend == "openai":
        from cotdistill.teachers.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg, seed)
    if cfg.backend == "hf":
        from cotdistill.teachers.hf_backend import HFBackend

        return HFBackend(cfg, seed)
    if cfg.backend == "synthetic":
        try:
            from cotdistill.lab.synthetic import SyntheticBackend
        except ImportError as e:
            if e.name and not "cotdistill.lab.synthetic".startswith(e.name):
                raise  # the module exists but something it imports is broken: show the real error
            raise CotdistillError(
                f"teacher '{cfg.name}': the synthetic backend (cotdistill.lab.synthetic.SyntheticBackend) is not "
                "available in this installation; use backend 'openai' or 'hf'"
            ) from None
        return SyntheticBackend(cfg, seed)
    raise CotdistillError(f"teacher '{cfg.name}': unknown backend '{cfg.backend}' (known: openai, hf, synthetic)")


__all__ = ["Completion", "GenRequest", "OnResult", "TeacherBackend", "build_backend"]
