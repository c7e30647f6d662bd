"""Records round-trip through JSONL; atomic writes leave nothing half-written; the appender repairs torn tails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotdistill.errors import InputError
from cotdistill.io import JsonlAppender, atomic_write_jsonl, atomic_write_text, repair_torn_tail
from cotdistill.records import Question, load_questions, path_id, read_paths, read_questions
from cotdistill.records import ReasoningPath as PathRecord


def _questions() -> list[Question]:
    return [
        Question(id="q1", task="math", question="2 + 3?", gold="5", metadata={"gold_solution": "2 + 3 = 5"}),
        Question(id="q2", task="choice", question="Capital?", choices=["Berlin", "Paris"], gold="B", split="dev"),
        Question(id="q3", task="label", question="P: ü. H: ∑.", gold="neutral", split="test", source="x"),
    ]


def _paths() -> list[PathRecord]:
    return [
        PathRecord(
            id=path_id("q1", "gpt", "cot", s),
            question_id="q1",
            teacher="gpt",
            style="cot",
            sample=s,
            text=f"2 + 3 = 5 (sample {s}) — done ✓",
            answer="5",
            checks={"answer_ok": True, "judge": None, "consensus": 0.5},
            metadata={"usage": {"prompt_tokens": 12}},
        )
        for s in range(3)
    ]


def test_records_round_trip(tmp_path: Path):
    qs, ps = _questions(), _paths()
    assert atomic_write_jsonl(tmp_path / "questions.jsonl", qs) == 3
    assert atomic_write_jsonl(tmp_path / "paths.jsonl", ps) == 3
    assert list(read_questions(tmp_path / "questions.jsonl")) == qs
    assert list(read_paths(tmp_path / "paths.jsonl")) == ps
    assert load_questions(tmp_path / "questions.jsonl") == {q.id: q for q in qs}
    for line in (tmp_path / "paths.jsonl").read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["schema_version"] == 1
    assert ps[1].id == "q1|gpt|cot|1"


def test_read_skips_blank_lines_and_streams(tmp_path: Path):
    p = tmp_path / "q.jsonl"
    p.write_text("\n" + _questions()[0].model_dump_json() + "\n\n   \n" + _questions()[1].model_dump_json() + "\n")
    it = read_questions(p)
    assert next(it).id == "q1"  # a generator: records come one at a time
    assert [q.id for q in it] == ["q2"]


def test_unknown_field_and_future_schema_are_rejected(tmp_path: Path):
    p = tmp_path / "q.jsonl"
    rec = json.loads(_questions()[0].model_dump_json())
    p.write_text(json.dumps({**rec, "extra": 1}) + "\n")
    with pytest.raises(InputError) as info:
        list(read_questions(p))
    assert (info.value.line, info.value.field, info.value.detail) == (1, "extra", "unknown field")
    p.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "schema_version": 2}) + "\n")
    with pytest.raises(InputError, match="newer") as info:
        list(read_questions(p))
    assert info.value.line == 2


def test_empty_and_duplicate_question_files(tmp_path: Path):
    p = tmp_path / "q.jsonl"
    p.write_text("\n\n")
    with pytest.raises(InputError, match="empty"):
        list(read_questions(p))
    assert list(read_questions(p, allow_empty=True)) == []
    q = _questions()[0]
    p.write_text(q.model_dump_json() + "\n" + q.model_dump_json() + "\n")
    with pytest.raises(InputError, match="duplicate question id 'q1'"):
        load_questions(p)


def test_atomic_write_keeps_old_file_when_the_stream_fails(tmp_path: Path):
    p = tmp_path / "q.jsonl"
    atomic_write_jsonl(p, _questions())
    before = p.read_bytes()

    def broken():
        yield _questions()[0]
        raise RuntimeError("generator died half-way")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(p, broken())
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["q.jsonl"]  # no temp file left behind
    atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"


def test_appender_repairs_a_torn_tail(tmp_path: Path):
    p = tmp_path / "log.jsonl"
    with JsonlAppender(p) as app:
        for i in range(3):
            app.write({"schema_version": 1, "i": i})
    # a kill mid-write leaves a partial last line (here cut inside a multi-byte character)
    with open(p, "ab") as f:
        f.write('{"schema_version": 1, "i": 3, "s": "é'.encode()[:-1])
    with JsonlAppender(p) as app:
        app.write({"schema_version": 1, "i": 4})
    lines = p.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["i"] for x in lines] == [0, 1, 2, 4]


def test_appender_keeps_a_complete_file_untouched(tmp_path: Path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n')
    JsonlAppender(p).close()
    assert p.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_repair_torn_tail_edge_cases(tmp_path: Path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"only": "partial')  # no newline at all: nothing complete survives
    repair_torn_tail(p)
    assert p.read_bytes() == b""
    long_tail = b'{"a": 1}\n' + b'{"b": "' + b"x" * 10_000  # torn line longer than the scan chunk
    p.write_bytes(long_tail)
    repair_torn_tail(p)
    assert p.read_bytes() == b'{"a": 1}\n'
    repair_torn_tail(tmp_path / "missing.jsonl")  # a missing file is fine
    assert not (tmp_path / "missing.jsonl").exists()
