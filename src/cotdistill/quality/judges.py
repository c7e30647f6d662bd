"""Judges of a reasoning path's soundness: ``arithmetic`` (local), ``llm`` (any teacher backend), ``none``.

A judge turns a batch of (question, path) pairs into :class:`Verdict` s. The LLM judge follows QR-Distill's
strict protocol: the reply must be ``VALID`` or ``INVALID - <one-sentence reason>`` (temperature 0); replies are
parsed forgivingly (case, punctuation, markdown, preambles), and a reply that still cannot be read is recorded
as ``unparseable`` and handled by the configured policy. Verdicts are cached so a re-run never asks twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Literal, Protocol

from cotdistill.io import JsonlAppender
from cotdistill.quality.arithmetic import arithmetic_verdict
from cotdistill.records import Path, Question
from cotdistill.tasks import get_family
from cotdistill.teachers.base import Completion, GenRequest, TeacherBackend

VerdictKind = Literal["valid", "invalid", "unparseable"]


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one path: ``valid`` / ``invalid`` / ``unparseable`` and a one-line reason."""

    verdict: VerdictKind
    reason: str = ""


class Judge(Protocol):
    """Judges a batch of paths; returns one verdict per path, in order."""

    name: str

    def judge(self, items: Sequence[tuple[Question, Path]]) -> list[Verdict]: ...


class ArithmeticJudge:
    """Re-computes every stated calculation of a path; any false one makes the path invalid."""

    name = "arithmetic"

    def judge(self, items: Sequence[tuple[Question, Path]]) -> list[Verdict]:
        out = []
        for _, p in items:
            ok, reason = arithmetic_verdict(p.text)
            out.append(Verdict("valid" if ok else "invalid", reason))
        return out


class SyntheticJudge:
    """For lab questions: the arithmetic judge, plus the lab's solution-based judge when the lab is installed.

    The lab judge (``cotdistill.lab.judge.judge_lab_path``) also checks that every gold step is stated; it reads
    the question's exact solution, never a path's recorded faults.
    """

    name = "synthetic"

    def __init__(self) -> None:
        try:
            from cotdistill.lab.judge import judge_lab_path
        except ImportError:
            judge_lab_path = None
        self._lab = judge_lab_path

    def judge(self, items: Sequence[tuple[Question, Path]]) -> list[Verdict]:
        out = []
        for q, p in items:
            ok, reason = arithmetic_verdict(p.text)
            if ok and self._lab is not None and q.metadata.get("solution"):
                ok, lab_reason = self._lab(q, p.text)
                reason = lab_reason or reason
            out.append(Verdict("valid" if ok else "invalid", reason))
        return out


# ---- the LLM judge ---------------------------------------------------------------------------------------------

JUDGE_SYSTEM = (
    "You are a strict grader of step-by-step solutions. You check that a solution is logically sound: every "
    "intermediate step is correct (no hallucinated facts, no arithmetic or logical errors) and the steps actually "
    "support the final answer."
)
JUDGE_TEMPLATE = """Question:
{question}

Proposed solution:
{solution}

Is this solution logically sound, with every step correct and supporting its final answer?
Reply with exactly one line and nothing else:
VALID
or
INVALID - <one-sentence reason>"""

_MARKUP = re.compile(r"[*_`#>]+")
_LEAD = r"(?:(?:final\s+)?(?:verdict|answer|judg(?:e)?ment|decision|evaluation|grade|result)\s*(?:is)?\s*[:=\-]?\s*)?"
_LINE_VERDICT = re.compile(rf"^\s*[\[(\"']?\s*{_LEAD}[\[(\"']?\s*(in)?valid\b[\])\"']?(.*)$", re.IGNORECASE)
_INLINE_LEAD = re.compile(
    r"(?:verdict|judg(?:e)?ment|decision|evaluation)\s*(?:is)?\s*[:=\-]\s*[\[(\"']?\s*(in)?valid\b(.*)", re.IGNORECASE
)
_UPPER = re.compile(r"\b(INVALID|VALID)\b")


def _clean_reason(rest: str) -> str:
    r = rest.strip().lstrip("-–—:;,.)]\"' ").strip()
    r = r.strip().strip("\"'").strip()
    return r[:500]


def parse_judge_reply(reply: str | None) -> Verdict:
    """Read a judge reply: ``VALID`` / ``INVALID - reason`` in any case, with markdown, punctuation or a preamble.

    The last line that starts with a verdict wins; failing that, a ``verdict: ...`` phrase, then a lone upper-case
    VALID/INVALID token. Anything else (empty, garbage, both tokens with no verdict line) is ``unparseable``.
    """
    if reply is None or not reply.strip():
        return Verdict("unparseable", "empty reply")
    text = _MARKUP.sub("", reply)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        m = _LINE_VERDICT.match(ln)
        if m:
            rest = m.group(2)
            if m.group(1):
                return Verdict("invalid", _clean_reason(rest) or "judged invalid (no reason given)")
            # "VALID" followed by words that are not a reason-separator: still valid ("VALID.", "Valid!")
            return Verdict("valid", "")
    inline = list(_INLINE_LEAD.finditer(text))
    if inline:
        m = inline[-1]
        if m.group(1):
            return Verdict("invalid", _clean_reason(m.group(2)) or "judged invalid (no reason given)")
        return Verdict("valid", "")
    tokens = {t for t in _UPPER.findall(text)}
    if len(tokens) == 1:
        tok = tokens.pop()
        if tok == "INVALID":
            after = text[text.rfind("INVALID") + len("INVALID") :]
            return Verdict("invalid", _clean_reason(after.split("\n", 1)[0]) or "judged invalid (no reason given)")
        return Verdict("valid", "")
    snippet = " ".join(reply.split())[:80]
    return Verdict("unparseable", f"unparseable judge reply: {snippet!r}")


def judge_messages(q: Question, p: Path) -> list[dict[str, str]]:
    """The chat conversation that asks for a verdict on path ``p`` (question rendered by its task family)."""
    question = get_family(q.task).render_question(q)
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": JUDGE_TEMPLATE.format(question=question, solution=p.text.strip())},
    ]


class VerdictCache:
    """Append-only cache of judge verdicts keyed by (judge identity, question, path text): resumable judging."""

    def __init__(self, path: str | FsPath):
        self.path = FsPath(path)
        self._mem: dict[str, Verdict] = {}
        if self.path.exists():
            from cotdistill.io import repair_torn_tail

            repair_torn_tail(self.path)
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        r = json.loads(line)
                        self._mem[r["key"]] = Verdict(r["verdict"], r.get("reason", ""))
                    except (json.JSONDecodeError, KeyError):
                        continue
        self._out: JsonlAppender | None = None

    @staticmethod
    def key(identity: str, q: Question, p: Path) -> str:
        h = hashlib.blake2b(digest_size=16)
        for part in (identity, q.question, str(q.choices), p.text):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()

    def get(self, key: str) -> Verdict | None:
        return self._mem.get(key)

    def put(self, key: str, v: Verdict) -> None:
        self._mem[key] = v
        if self._out is None:
            self._out = JsonlAppender(self.path, fsync_every=256)
        self._out.write({"schema_version": 1, "key": key, "verdict": v.verdict, "reason": v.reason})

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


class LLMJudge:
    """A teacher backend used as judge: one request per path, replies parsed, verdicts cached.

    Transport failures (the backend's ``Completion.error``) are *not* cached, so a re-run retries them;
    they are reported as ``unparseable`` with the error as reason.
    """

    name = "llm"

    def __init__(self, backend: TeacherBackend, identity: str, cache: VerdictCache | None = None, seed: int = 0):
        self.backend, self.identity, self.cache, self.seed = backend, identity, cache, seed

    def judge(self, items: Sequence[tuple[Question, Path]]) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(items)
        requests: list[GenRequest] = []
        where: dict[str, tuple[int, str]] = {}
        for i, (q, p) in enumerate(items):
            key = VerdictCache.key(self.identity, q, p)
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                out[i] = hit
                continue
            rkey = f"judge|{i}|{p.id}"
            requests.append(
                GenRequest(key=rkey, question=q, style="judge", sample=0, messages=judge_messages(q, p), seed=self.seed)
            )
            where[rkey] = (i, key)

        def on_result(req: GenRequest, c: Completion) -> None:
            i, key = where[req.key]
            if c.error is not None or c.text is None:
                out[i] = Verdict("unparseable", f"judge request failed: {c.error or 'no text'}"[:300])
                return
            v = parse_judge_reply(c.text)
            out[i] = v
            if self.cache is not None:
                self.cache.put(key, v)

        if requests:
            self.backend.generate(requests, on_result)
        return [v if v is not None else Verdict("unparseable", "judge gave no result") for v in out]


def judge_identity(model: str, backend: str, base_url: str | None) -> str:
    """What makes two LLM judges interchangeable for caching: backend, model, server and the protocol text."""
    proto = hashlib.blake2b((JUDGE_SYSTEM + JUDGE_TEMPLATE).encode(), digest_size=8).hexdigest()
    return f"llm|{backend}|{model}|{base_url or ''}|{proto}"


__all__ = [
    "ArithmeticJudge",
    "Judge",
    "SyntheticJudge",
    "LLMJudge",
    "Verdict",
    "VerdictCache",
    "judge_identity",
    "judge_messages",
    "parse_judge_reply",
]
