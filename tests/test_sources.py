"""Question sources: local files (JSONL, JSON, CSV, Parquet) with field mapping, and reasoning-gym by name."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cotdistill.errors import CotdistillError, InputError
from cotdistill.sources import load_source

ROWS = [
    {"uid": "p1", "problem": "What is 2 + 3?", "solution": 5, "topic": "add", "part": "train"},
    {"uid": "p2", "problem": "Capital of France?", "solution": "B", "options": ["Berlin", "Paris"], "kind": "choice"},
    {"uid": "p3", "problem": "Is 7 prime?", "solution": "yes", "kind": "yesno", "part": "test"},
    {"uid": "p4", "problem": "What is 10 / 4?", "solution": "2.5", "part": "dev"},
]
MAPPING = {
    "id": "uid",
    "question": "problem",
    "gold": "solution",
    "choices": "options",
    "task": "kind",
    "split": "part",
}
COUNTS = {"train": 10, "dev": 10, "test": 10}


def _write_jsonl(p: Path) -> Path:
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return p


def _write_json(p: Path) -> Path:
    p.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    return p


def _write_csv(p: Path) -> Path:
    cols = ["uid", "problem", "solution", "options", "kind", "part", "topic"]
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in ROWS:
            row = {k: r.get(k, "") for k in cols}
            row["options"] = "|".join(r["options"]) if "options" in r else ""
            w.writerow(row)
    return p


def _write_parquet(p: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["uid", "problem", "solution", "options", "kind", "part", "topic"]
    table = pa.table(
        {
            c: [
                (str(r[c]) if c == "solution" else r[c]) if c in r else (None if c != "options" else None) for r in ROWS
            ]
            for c in cols
        }
    )
    pq.write_table(table, p)
    return p


@pytest.mark.parametrize(
    ("suffix", "writer"),
    [(".jsonl", _write_jsonl), (".json", _write_json), (".csv", _write_csv), (".parquet", _write_parquet)],
)
def test_file_source_maps_fields(tmp_path: Path, suffix: str, writer):
    path = writer(tmp_path / f"mine{suffix}")
    qs = list(load_source(f"file:{path}", COUNTS, fields=MAPPING))
    assert [q.id for q in qs] == ["p1", "p2", "p3", "p4"]
    by_id = {q.id: q for q in qs}
    assert by_id["p1"].question == "What is 2 + 3?" and by_id["p1"].gold == "5"  # numbers become strings
    assert by_id["p1"].task == "math"  # no task column value: math
    assert by_id["p2"].task == "choice" and by_id["p2"].choices == ["Berlin", "Paris"]
    assert by_id["p3"].task == "yesno" and by_id["p3"].split == "test"
    assert by_id["p4"].split == "dev" and by_id["p2"].split == "train"  # no split value: train
    assert all(q.source == f"file:mine{suffix}" for q in qs)
    assert by_id["p1"].metadata.get("topic") == "add"  # unmapped columns are kept as metadata
    assert "problem" not in by_id["p1"].metadata and "uid" not in by_id["p1"].metadata
    # a bare path works the same as file:PATH
    assert [q.id for q in load_source(str(path), COUNTS, fields=MAPPING)] == ["p1", "p2", "p3", "p4"]


def test_default_field_names_and_generated_ids(tmp_path: Path):
    p = tmp_path / "plain.jsonl"
    p.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": "4", "id": "x"}\n')
    qs = list(load_source(str(p), COUNTS))
    assert [(q.id, q.gold, q.split, q.task) for q in qs] == [
        ("plain-0", "2", "train", "math"),
        ("x", "4", "train", "math"),
    ]


def test_counts_cap_each_split_and_task_override(tmp_path: Path):
    p = tmp_path / "many.jsonl"
    rows = [{"question": f"q{i}", "answer": "yes", "split": "train" if i % 2 else "test"} for i in range(10)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qs = list(load_source(str(p), {"train": 2, "dev": 0, "test": 3}, task="yesno"))
    assert [q.split for q in qs].count("train") == 2 and [q.split for q in qs].count("test") == 3
    assert {q.task for q in qs} == {"yesno"}
    assert [q.question for q in qs] == ["q0", "q1", "q2", "q3", "q4"]  # file order, first ones kept


def test_choices_as_json_string_in_csv(tmp_path: Path):
    p = tmp_path / "c.csv"
    p.write_text('question,answer,choices,task\nPick,A,"[""x"", ""y""]",choice\n', encoding="utf-8")
    (q,) = load_source(str(p), COUNTS)
    assert q.choices == ["x", "y"] and q.task == "choice"


def test_choice_rows_without_a_choices_column_take_the_options_in_their_text(tmp_path: Path):
    p = tmp_path / "csqa.jsonl"
    rows = [
        {
            "question": "What could cats do if they were taller? Answer Choices:\nA. annoy\nB. open doors\n",
            "answer": "B",
        },
        {"question": "Pick one", "answer": "A", "choices": ["x", "y"]},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = load_source(str(p), COUNTS, task="choice")
    assert (a.question, a.choices) == ("What could cats do if they were taller?", ["annoy", "open doors"])
    assert (b.question, b.choices) == ("Pick one", ["x", "y"])  # a choices column wins
    (m,) = load_source(str(p), {"train": 1}, task="math")  # other families keep the text as it is
    assert m.question == rows[0]["question"] and m.choices is None


def test_json_wrapped_in_data_key(tmp_path: Path):
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"data": [{"question": "a?", "answer": "1"}, {"question": "b?", "answer": "2"}]}))
    assert [q.gold for q in load_source(str(p), COUNTS)] == ["1", "2"]


def test_unreadable_parquet(tmp_path: Path):
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="bad.parquet: not a readable Parquet file"):
        list(load_source(str(p), COUNTS))


def test_unknown_source_prefix():
    with pytest.raises(CotdistillError, match="unknown question source 'zz:1'"):
        load_source("zz:1", COUNTS)


# ---------------------------------------------------------------- reasoning-gym

RG_COUNTS = {"train": 5, "dev": 2, "test": 3}


def test_rg_source_counts_splits_gold_solution_and_determinism():
    qs = list(load_source("rg:gsm_symbolic,basic_arithmetic", RG_COUNTS, seed=7))
    assert len(qs) == 10
    for split, n in RG_COUNTS.items():
        assert sum(q.split == split for q in qs) == n
    names = [q.source for q in qs]
    # each split is spread evenly, the first dataset taking the odd one: train 3+2, dev 1+1, test 2+1
    assert names.count("reasoning-gym:gsm_symbolic") == 6 and names.count("reasoning-gym:basic_arithmetic") == 4
    assert len({q.id for q in qs}) == 10 and len({q.question for q in qs}) == 10  # splits never share a question
    assert all(q.task == "math" and q.gold for q in qs)
    gsm = [q for q in qs if q.source.endswith("gsm_symbolic")]
    # the gold step-by-step solution survives in metadata, and it reaches the gold answer
    assert all(isinstance(q.metadata.get("gold_solution"), str) and q.metadata["gold_solution"] for q in gsm)
    assert all(q.gold in q.metadata["gold_solution"] for q in gsm)
    arith = [q for q in qs if q.source.endswith("basic_arithmetic")]
    assert all("gold_solution" not in q.metadata for q in arith)

    again = list(load_source("rg:gsm_symbolic,basic_arithmetic", RG_COUNTS, seed=7))
    assert [q.model_dump() for q in again] == [q.model_dump() for q in qs]
    other = list(load_source("rg:gsm_symbolic,basic_arithmetic", RG_COUNTS, seed=8))
    assert [q.question for q in other] != [q.question for q in qs]


def test_rg_gold_is_what_the_math_family_accepts():
    from cotdistill.tasks import get_family

    math = get_family("math")
    for q in load_source("rg:basic_arithmetic", {"train": 5}, seed=1):
        assert math.equivalent(math.extract(math.format_answer(q.gold)), q.gold)


def test_rg_unknown_dataset():
    with pytest.raises(CotdistillError, match="unknown reasoning-gym dataset 'no_such_thing'"):
        list(load_source("rg:no_such_thing", RG_COUNTS))
    with pytest.raises(CotdistillError, match="at least one"):
        list(load_source("rg:", RG_COUNTS))
