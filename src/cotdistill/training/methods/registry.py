"""The one list of training methods: name -> options model and implementation, filled by :func:`register_method`.

Registration is light (the options model is a pydantic model; the implementation is imported on first use), so a
config is validated, options included, without importing torch. Built-in methods register in this package's
``__init__``; a third-party method registers the same way from its own package (see ``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from cotdistill.errors import ConfigError

if TYPE_CHECKING:
    from cotdistill.training.methods.base import Method


class MethodOptions(BaseModel):
    """Base of every method's ``train.options`` model: unknown keys are errors, so a typo never passes silently.

    The options here apply to every method (``Method.training_examples`` / ``Method.step`` implement them).
    """

    model_config = ConfigDict(extra="forbid")

    answer_examples: bool = Field(
        False,
        description="also train step-by-step's answer task: per path example an answer-only example (the prompt "
        "after answer_examples_prefix, the family's answer sentence as target); its mean CE is added as L_answer",
    )
    answer_examples_prefix: str = Field("[answer] ", description="task prefix of the answer examples' prompt")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, options model, implementation (``module:Class``) and a one-line summary."""

    name: str
    options: type[MethodOptions]
    target: str | type[Method]
    summary: str

    def load(self) -> type[Method]:
        """The implementation class (a ``module:Class`` target is imported on first use)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, options: type[MethodOptions], target: str | type[Method], summary: str) -> MethodSpec:
    """Make a method available to ``train.method`` / ``cotdistill train --method NAME``: its options model, and the
    implementation as a class or as ``"module:Class"`` (imported on first use, so configs validate without it)."""
    spec = MethodSpec(name, options, target, summary)
    _METHODS[name] = spec
    return spec


def method_names() -> list[str]:
    """Every registered method, in registration order."""
    return list(_METHODS)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; a clear error listing the known ones otherwise."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method '{name}' (known: {', '.join(_METHODS)})") from None
