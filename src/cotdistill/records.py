"""The run directory's records: questions and reasoning paths, as versioned, validated, streamed JSONL."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any, BinaryIO, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from cotdistill.errors import InputError
from cotdistill.io import iter_json_lines

SCHEMA_VERSION = 1

Split = Literal["train", "dev", "test"]


class Record(BaseModel):
    """Base of every JSONL record: strict fields plus a schema version for forward compatibility."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)
    schema_version: int = SCHEMA_VERSION


class Question(Record):
    """A question with its gold answer; ``task`` names the task family that prompts, extracts and compares."""

    id: str = Field(min_length=1)
    task: str = Field(min_length=1, description="task family: math, choice, yesno, label")
    question: str = Field(min_length=1)
    choices: list[str] | None = Field(None, validate_default=True)
    gold: str = Field(description="gold answer, in the task family's canonical form")
    source: str = ""
    split: Split = "train"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _known_family(cls, v: str) -> str:
        # every stage grades a question through its family: an unknown one must fail where it is read
        from cotdistill.tasks import FAMILIES

        if v not in FAMILIES:
            raise ValueError(f"unknown task family '{v}' (known: {', '.join(sorted(FAMILIES))})")
        return v

    @field_validator("choices")
    @classmethod
    def _choice_options(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        # a choice question must show its options, as a list or in its text; otherwise no answer can be graded
        if info.data.get("task") != "choice":
            return v
        from cotdistill.tasks.choice import LETTERS

        if v is not None and not 2 <= len(v) <= len(LETTERS):
            raise ValueError(f"a choice question needs 2 to {len(LETTERS)} options, got {len(v)}")
        if v is None and options_in_text(str(info.data.get("question", ""))) < 2:
            raise ValueError("a choice question needs its options: a choices list, or (A) (B) ... in the question text")
        return v

    @field_validator("gold")
    @classmethod
    def _choice_gold(cls, v: str, info: ValidationInfo) -> str:
        # a choice gold is an option's letter (A.. up to the number of options); "(B)" or an option's text become it
        if info.data.get("task") != "choice" or "choices" not in info.data:
            return v
        from cotdistill.tasks.choice import LETTERS, ChoiceFamily

        choices = info.data["choices"]
        n = len(choices) if choices else options_in_text(str(info.data.get("question", "")))
        letter = ChoiceFamily().option_letter(v, choices)
        if letter is None or LETTERS.index(letter) >= n:
            raise ValueError(f"gold '{v}' is not one of the {n} options (A-{LETTERS[n - 1]})")
        return letter


_OPTION_MARK = re.compile(r"\(([A-Ja-j])\)|(?:^|(?<=\s))([A-J])[.):](?=\s)", re.MULTILINE)


def options_in_text(text: str) -> int:
    """How many options (A), (B), ... (or ``A.`` / ``A)``) a question's text lists, counted from A without gaps."""
    found = {(m.group(1) or m.group(2)).upper() for m in _OPTION_MARK.finditer(text)}
    n = 0
    while n < 10 and "ABCDEFGHIJ"[n] in found:
        n += 1
    return n


class ReasoningPath(Record):
    """One reasoning path (rationale + final answer) written by a teacher in a style for a question.

    ``checks`` is filled by later stages: ``answer_ok``, ``judge`` / ``judge_reason``, ``consensus``, ``kept`` ...
    ``metadata`` holds generation facts (usage, injected faults of synthetic teachers); filters never read it.
    """

    id: str = Field(min_length=1)
    question_id: str = Field(min_length=1)
    teacher: str = Field(min_length=1)
    style: str = Field(min_length=1)
    sample: int = 0
    prompt: str = ""
    text: str
    answer: str | None = None
    checks: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


def is_kept(path: ReasoningPath) -> bool:
    """Whether the filter kept ``path`` (``checks.kept``): the one definition every stage uses.

    A path the filter never saw has no ``kept`` check and is not kept; training without a filter stage marks
    every path kept explicitly (``training.data.load_train_data``).
    """
    return bool(path.checks.get("kept", False))


R = TypeVar("R", bound=BaseModel)


def path_id(question_id: str, teacher: str, style: str, sample: int) -> str:
    """The stable id of a generated path: one per (question, teacher, style, sample)."""
    return f"{question_id}|{teacher}|{style}|{sample}"


def _first_error(err: ValidationError) -> tuple[str, str]:
    e = err.errors()[0]
    field = ".".join(str(p) for p in e.get("loc", ())) or None
    msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
    if e.get("type") == "missing":
        msg = "missing required field"
    elif e.get("type") == "extra_forbidden":
        msg = "unknown field"
    return field or "", msg


def iter_jsonl(path: str | os.PathLike, model: type[R], allow_empty: bool = False) -> Iterator[tuple[int, R]]:
    """Stream and validate records from a JSONL file with each record's byte offset, one line at a time.

    Any problem raises :class:`InputError` naming the file, the line and the field. The offsets let a caller keep
    a few bytes per record and read records back on demand (:func:`read_at`) instead of holding them all.
    """
    for _, start, rec in iter_numbered(path, model, allow_empty):
        yield start, rec


def iter_numbered(path: str | os.PathLike, model: type[R], allow_empty: bool = False) -> Iterator[tuple[int, int, R]]:
    """:func:`iter_jsonl` with each record's line number first: (line, byte offset, record)."""
    p = FsPath(path)
    n = 0
    for lineno, start, obj in iter_json_lines(p):
        version = obj.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise InputError(
                p, f"schema version {version} is newer than this cotdistill ({SCHEMA_VERSION})", line=lineno,
                field="schema_version",
            )  # fmt: skip
        try:
            rec = model.model_validate(obj)
        except ValidationError as e:
            field, msg = _first_error(e)
            raise InputError(p, msg, line=lineno, field=field) from None
        n += 1
        yield lineno, start, rec
    if n == 0 and not allow_empty:
        raise InputError(p, "file is empty: no records")


def read_jsonl(path: str | os.PathLike, model: type[R], allow_empty: bool = False) -> Iterator[R]:
    """Stream and validate records from a JSONL file, one line at a time (never the whole file in memory).

    Any problem raises :class:`InputError` naming the file, the line and the field.
    """
    for _, rec in iter_jsonl(path, model, allow_empty):
        yield rec


def read_at(f: BinaryIO, offset: int, model: type[R]) -> R:
    """The record at byte ``offset`` of an open JSONL file (an offset from :func:`iter_jsonl`)."""
    f.seek(offset)
    line = f.readline()
    if offset == 0 and line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8) :]
    return model.model_validate_json(line)


def read_questions(path: str | os.PathLike, allow_empty: bool = False) -> Iterator[Question]:
    """Stream :class:`Question` records from ``path``."""
    return read_jsonl(path, Question, allow_empty=allow_empty)


def read_paths(path: str | os.PathLike, allow_empty: bool = False) -> Iterator[ReasoningPath]:
    """Stream :class:`ReasoningPath` records from ``path``."""
    return read_jsonl(path, ReasoningPath, allow_empty=allow_empty)


def index_questions(path: str | os.PathLike) -> dict[str, int]:
    """Byte offset of each question by id, every line validated as :func:`load_questions` does: a stage that
    sees a few questions at a time (``filter``) reads them back with :func:`read_at` instead of holding them."""
    out: dict[str, int] = {}
    lines: dict[str, int] = {}
    for lineno, offset, q in iter_numbered(path, Question):
        _unique(q.id, lineno, lines, path)
        out[q.id] = offset
    return out


def load_questions(path: str | os.PathLike) -> dict[str, Question]:
    """Questions by id (question files are small next to path files, so they may live in memory)."""
    out: dict[str, Question] = {}
    lines: dict[str, int] = {}
    for lineno, _, q in iter_numbered(path, Question):
        _unique(q.id, lineno, lines, path)
        out[q.id] = q
    return out


def _unique(qid: str, lineno: int, seen: dict[str, int], path: str | os.PathLike) -> None:
    """Record ``qid`` as seen on ``lineno``; a repeat is an error naming both lines."""
    if qid in seen:
        raise InputError(path, f"duplicate question id '{qid}' (first on line {seen[qid]})", line=lineno, field="id")
    seen[qid] = lineno
