"""Judges of a reasoning path's soundness, by ``filter.judge.kind``: ``arithmetic`` (local), ``llm`` (any teacher
backend), ``none``, and whatever a plugin registers (the lab's ``synthetic``) through :func:`register_judge`.

A judge turns a batch of (question, path) pairs into :class:`Verdict` s. The LLM judge follows QR-Distill's
strict protocol: the reply must be ``VALID`` or ``INVALID - <one-sentence reason>`` (temperature 0); replies are
parsed forgivingly (case, punctuation, markdown, preambles), and a reply that still cannot be read is recorded
as ``unparseable`` and handled by the configured policy. Verdicts are cached so a re-run never asks twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Literal, Protocol

from cotdistill.errors import ConfigError, StageFailed
from cotdistill.io import JsonlAppender, iter_objects, repair_torn_tail
from cotdistill.quality.arithmetic import arithmetic_verdict
from cotdistill.records import Question, ReasoningPath
from cotdistill.tasks import get_family
from cotdistill.teachers.base import Completion, GenRequest, TeacherBackend

if TYPE_CHECKING:
    from cotdistill.config import RunConfig
    from cotdistill.rundir import RunDir

VerdictKind = Literal["valid", "invalid", "unparseable"]


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one path: ``valid`` / ``invalid`` / ``unparseable`` and a one-line reason."""

    verdict: VerdictKind
    reason: str = ""


class Judge(Protocol):
    """Judges a batch of paths; returns one verdict per path, in order."""

    name: str

    def judge(self, items: Sequence[tuple[Question, ReasoningPath]]) -> list[Verdict]: ...


class ArithmeticJudge:
    """Re-computes every stated calculation of a path; any false one makes the path invalid."""

    name = "arithmetic"

    def judge(self, items: Sequence[tuple[Question, ReasoningPath]]) -> list[Verdict]:
        out = []
        for _, p in items:
            ok, reason = arithmetic_verdict(p.text)
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

# markdown around the verdict (**VALID**, *Invalid*, `VALID`, "# Verdict"), never a "*" inside a reason
_MARKUP = re.compile(r"\*\*|__|`+|^\s*[#>]+\s*|\*(?=(?:in)?valid)|(?<=valid)\*", re.IGNORECASE | re.MULTILINE)
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


def judge_messages(q: Question, p: ReasoningPath) -> list[dict[str, str]]:
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
        repair_torn_tail(self.path)
        for r in iter_objects(self.path):
            if isinstance(r.get("key"), str) and r.get("verdict") in ("valid", "invalid", "unparseable"):
                self._mem[r["key"]] = Verdict(r["verdict"], str(r.get("reason", "")))
        self._out: JsonlAppender | None = None

    @staticmethod
    def key(identity: str, q: Question, p: ReasoningPath) -> str:
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


# failures where the server did answer, with something unusable for this one path: the path's verdict is unparseable
ANSWERED_KINDS = ("malformed", "bad_request")


class LLMJudge:
    """A teacher backend used as judge: one request per path, replies parsed, verdicts cached.

    A reply that cannot be read (or a server that answered this one request with an unusable body or a 4xx) is
    ``unparseable``. No server (connection refused, timeouts, 5xx, rate limits after every retry, a refused key
    or model) is no verdict at all: the judge stops the filter with :class:`StageFailed` (exit 3) instead of
    rejecting every path; verdicts received so far are cached, so the re-run asks only for the rest. Failed
    requests are never cached.
    """

    name = "llm"

    def __init__(self, backend: TeacherBackend, identity: str, cache: VerdictCache | None = None, seed: int = 0):
        self.backend, self.identity, self.cache, self.seed = backend, identity, cache, seed

    def judge(self, items: Sequence[tuple[Question, ReasoningPath]]) -> list[Verdict]:
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

        failures: list[str] = []

        def on_result(req: GenRequest, c: Completion) -> None:
            i, key = where[req.key]
            if c.error is not None or c.text is None:
                if c.kind in ANSWERED_KINDS:
                    out[i] = Verdict("unparseable", f"judge request failed: {c.error or 'no text'}"[:300])
                else:
                    failures.append(c.error or "no text")
                return
            v = parse_judge_reply(c.text)
            out[i] = v
            if self.cache is not None:
                self.cache.put(key, v)

        if requests:
            self.backend.generate(requests, on_result)
        if failures:
            raise StageFailed(
                f"filter: the LLM judge cannot be reached: {failures[0][:300]} ({len(failures)} of {len(requests)} "
                "request(s) failed); no path was rejected for it, verdicts so far are cached: re-run when it answers"
            )
        return [v if v is not None else Verdict("unparseable", "judge gave no result") for v in out]


def judge_identity(model: str, backend: str, base_url: str | None) -> str:
    """What makes two LLM judges interchangeable for caching: backend, model, server and the protocol text."""
    proto = hashlib.blake2b((JUDGE_SYSTEM + JUDGE_TEMPLATE).encode(), digest_size=8).hexdigest()
    return f"llm|{backend}|{model}|{base_url or ''}|{proto}"


# ---- the registry ----------------------------------------------------------------------------------------------

# kind -> factory(cfg, run) -> (judge, close or None); "none" means no judge
JudgeFactory = Callable[["RunConfig", "RunDir"], tuple[Judge, Callable[[], None] | None]]
_JUDGES: dict[str, JudgeFactory] = {}


def register_judge(kind: str, factory: JudgeFactory) -> None:
    """Make ``filter.judge.kind: KIND`` build a judge with ``factory(cfg, run)``."""
    _JUDGES[kind] = factory


def judge_kinds() -> list[str]:
    """Every judge kind the config accepts (``none`` included)."""
    from cotdistill.plugins import load_plugins

    load_plugins()
    return ["none", *_JUDGES]


def build_judge(cfg: RunConfig, run: RunDir) -> tuple[Judge | None, Callable[[], None] | None]:
    """The configured judge and what closes it afterwards; ``(None, None)`` for ``kind: none``."""
    kind = cfg.filter.judge.kind
    if kind == "none":
        return None, None
    if kind not in judge_kinds():
        raise ConfigError(f"filter.judge.kind: unknown judge '{kind}' (known: {', '.join(judge_kinds())})")
    return _JUDGES[kind](cfg, run)


def _arithmetic(cfg: RunConfig, run: RunDir) -> tuple[Judge, None]:
    return ArithmeticJudge(), None


def _llm(cfg: RunConfig, run: RunDir) -> tuple[Judge, Callable[[], None]]:
    """A configured teacher's backend at temperature 0, its verdicts cached in ``RUN/cache/judge_verdicts.jsonl``."""
    from cotdistill.teachers import build_backend

    j = cfg.filter.judge
    teacher = next((t for t in cfg.teachers if t.name == j.teacher), None)
    if teacher is None:
        raise ConfigError(f"filter.judge.teacher '{j.teacher}' is not one of the configured teachers")
    tcfg = teacher.model_copy(update={"temperature": 0.0, "top_p": 1.0})
    backend = build_backend(tcfg, cfg.seed)
    cache = VerdictCache(run.judge_cache)
    ident = judge_identity(tcfg.model, tcfg.backend, tcfg.base_url)

    def close() -> None:
        cache.close()
        backend.close()

    return LLMJudge(backend, ident, cache, seed=cfg.seed), close


register_judge("arithmetic", _arithmetic)
register_judge("llm", _llm)

__all__ = [
    "ArithmeticJudge",
    "Judge",
    "build_judge",
    "judge_kinds",
    "register_judge",
    "LLMJudge",
    "Verdict",
    "VerdictCache",
    "judge_identity",
    "judge_messages",
    "parse_judge_reply",
]
