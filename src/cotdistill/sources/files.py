"""Local question files (JSONL, JSON array, CSV, Parquet) with a field mapping onto :class:`Question`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cotdistill.errors import CotdistillError, InputError
from cotdistill.io import iter_json_lines
from cotdistill.records import Question
from cotdistill.sources import SourceRequest, register_source
from cotdistill.sources.choices import split_choices
from cotdistill.tasks import FAMILIES

SUFFIXES = {".jsonl", ".json", ".csv", ".parquet"}
DEFAULT_FIELDS = {
    "id": "id",
    "question": "question",
    "gold": "answer",
    "choices": "choices",
    "task": "task",
    "split": "split",
}


def iter_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, row) pairs from a JSONL, JSON-array, CSV or Parquet file; clear errors on bad input."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, f"is a directory, expected a file ({', '.join(sorted(SUFFIXES))})")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(path, f"unsupported file type '{suffix}' (use {', '.join(sorted(SUFFIXES))})")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise InputError(path, f"not a readable Parquet file ({e.__class__.__name__})") from None
        n = 0
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield n, row
        return
    if suffix == ".jsonl":
        for lineno, _, obj in iter_json_lines(path):
            yield lineno, obj
        return
    text = _decode(path.read_bytes(), path, None)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(path, f"malformed JSON: {e.msg} at column {e.colno}", line=e.lineno) from None
        if isinstance(data, list):
            # number each item by the line it starts on, so errors point into the file
            numbered = zip(_item_lines(text, len(data)), data, strict=True)
        else:
            if isinstance(data, dict):
                data = data.get("data", data.get("examples", [data]))
            if not isinstance(data, list):
                raise InputError(path, "expected a JSON array of objects")
            numbered = enumerate(data, 1)  # wrapped arrays: items are numbered, not located
        for i, obj in numbered:
            if not isinstance(obj, dict):
                raise InputError(path, f"array item is a {type(obj).__name__}, expected an object", line=i)
            yield i, obj
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        line = reader.line_num  # the physical line the record ends on (quoted fields may span lines)
        if None in row:
            n = len(reader.fieldnames or [])
            raise InputError(path, f"row has more values than the {n} header columns", line=line)
        yield line, dict(row)


def _item_lines(text: str, n: int) -> list[int]:
    """The line on which each of the ``n`` items of the top-level JSON array in ``text`` starts."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    pos = ws.match(text, text.index("[") + 1).end()
    line, counted, out = 1, 0, []
    for _ in range(n):
        line += text.count("\n", counted, pos)
        counted = pos
        out.append(line)
        _, end = decoder.raw_decode(text, pos)
        pos = ws.match(text, end).end()
    return out


def _decode(raw: bytes, path: Path, lineno: int | None) -> str:
    try:
        return raw.decode("utf-8-sig")  # a UTF-8 BOM (Excel's CSV export) is not part of the first column's name
    except UnicodeDecodeError as e:
        if lineno is None:
            lineno = raw[: e.start].count(b"\n") + 1
        raise InputError(path, f"not valid UTF-8 (byte {e.start})", line=lineno) from None


def row_to_question(
    row: dict[str, Any], path: Path, lineno: int, fields: dict[str, str], task: str | None, index: int
) -> Question:
    """Map one row onto a :class:`Question` through ``fields`` (our name -> the file's column); a choice row with no
    choices column gets the options of an ``Answer Choices:`` / ``Options:`` block in its text."""
    m = {**DEFAULT_FIELDS, **fields}
    for required in ("question", "gold"):
        if m[required] not in row or row[m[required]] in (None, ""):
            raise InputError(path, "missing required field", line=lineno, field=m[required])
    fam = task or row.get(m["task"]) or "math"
    if fam not in FAMILIES:
        raise InputError(
            path,
            f"unknown task family '{fam}' (known: {', '.join(sorted(FAMILIES))})",
            line=lineno,
            field="task",
        )
    choices = row.get(m["choices"])
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            choices = [c.strip() for c in choices.split("|")]
    question = row[m["question"]]
    if fam == "choice" and choices is None and isinstance(question, str):  # options inside the text
        question, choices = split_choices(question) or (question, None)
    known = set(m.values())
    data = {
        "id": str(row.get(m["id"]) or f"{path.stem}-{index}"),
        "task": fam,
        "question": question,
        "choices": choices,
        "gold": row[m["gold"]] if not isinstance(row[m["gold"]], int | float) else str(row[m["gold"]]),
        "source": f"file:{path.name}",
        "split": row.get(m["split"]) or "train",
        "metadata": {k: v for k, v in row.items() if k not in known and _jsonable(v)},
    }
    try:
        return Question.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ()))
        raise InputError(path, err.get("msg", "invalid"), line=lineno, field=m.get(field, field)) from None


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


@register_source("file")
def file_source(req: SourceRequest) -> Iterator[Question]:
    """Every row of the file (its own ``split`` column when present), capped per split by ``counts``."""
    rest, counts, task, fields = req.rest, req.counts, req.task, req.fields
    if not rest.strip():
        raise CotdistillError("source 'file:' names no file (use file:PATH)")
    path = Path(rest)
    taken: dict[str, int] = {}
    ids: set[str] = set()
    for index, (lineno, row) in enumerate(iter_rows(path)):
        q = row_to_question(row, path, lineno, fields, task, index)
        if q.id in ids:
            raise InputError(path, f"duplicate id '{q.id}'", line=lineno, field=fields.get("id", "id"))
        ids.add(q.id)
        cap = counts.get(q.split)
        if cap is not None and taken.get(q.split, 0) >= cap:
            continue
        taken[q.split] = taken.get(q.split, 0) + 1
        yield q
