"""The one small interface every teacher backend implements: requests in, completions out as they finish."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cotdistill.records import Question


@dataclass(frozen=True)
class GenRequest:
    """One path to write: a question in a style, as a chat conversation, with its sample index."""

    key: str  # the path id: unique per (question, teacher, style, sample)
    question: Question
    style: str
    sample: int
    messages: list[dict[str, str]]  # chat messages: [{"role": "system"|"user", "content": ...}]
    seed: int = 0

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class Completion:
    """A backend's answer to one request: the text, or an error after all retries."""

    text: str | None
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens
    error: str | None = None
    retries: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    # why it failed, when it did: connection, timeout, auth, not_found, rate_limit, server, bad_request, malformed
    # (None: the backend did not say); auth / not_found / connection mean the teacher itself is unusable as set up
    kind: str | None = None


OnResult = Callable[[GenRequest, Completion], None]


class TeacherBackend(ABC):
    """Writes completions for requests; calls ``on_result`` once per request, in completion order."""

    @abstractmethod
    def generate(self, requests: Sequence[GenRequest], on_result: OnResult) -> None:
        """Complete every request (bounded concurrency where the backend is remote)."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections or models."""
