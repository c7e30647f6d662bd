"""Bad input through the real CLI: exit code 2, one line naming file, line and field, no traceback, nothing
half-written (no questions.jsonl / paths.jsonl / temp files in the output directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from cotdistill.sources.importers import ImportOptions, run_import

GOOD_ITEM = {"instruction": "Tom has 3 apples and buys 2. How many now?", "output": ["3 + 2 = 5."], "label": "5"}


def _assert_user_error(proc, *needles: str) -> str:
    """Exit 2, a single stderr line containing every needle, and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _assert_nothing_written(out_dir: Path) -> None:
    left = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    assert left == [], left


def _write_mcc(path: Path, items: list, indent: int | None = None) -> Path:
    path.write_text(json.dumps(items, indent=indent), encoding="utf-8")
    return path


# ---------------------------------------------------------------- import mcc-kd (JSON array)


def test_import_malformed_json_names_line(tmp_path: Path):
    src = tmp_path / "broken.json"
    src.write_text('[\n {"instruction": "a", "output": ["x"], "label": "1"},\n {"instruction": "b" "label": 2}\n]\n')
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "broken.json:3:", "malformed JSON")
    _assert_nothing_written(tmp_path / "run")


def test_import_missing_field_names_item_line_and_field(tmp_path: Path):
    """A pretty-printed array: the error points at the line where the bad item starts, not its index."""
    bad = {k: v for k, v in GOOD_ITEM.items() if k != "label"}
    src = _write_mcc(tmp_path / "data.json", [GOOD_ITEM, GOOD_ITEM, bad], indent=2)
    starts = [i for i, ln in enumerate(src.read_text().splitlines(), 1) if ln == "  {"]
    line = starts[2]  # the third item's opening brace
    assert line > 3
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, f"data.json:{line}:", "'label'", "missing required field")
    _assert_nothing_written(tmp_path / "run")


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("instruction", 5, "expected str, got int"),
        ("output", [1, 2], "list of strings"),
        ("label", None, "got NoneType"),
    ],
)
def test_import_wrong_type_names_field(tmp_path: Path, field: str, value, expect: str):
    src = _write_mcc(tmp_path / "typed.json", [GOOD_ITEM, {**GOOD_ITEM, field: value}])
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "typed.json:1:", f"'{field}'", expect)  # one-line JSON: every item is on line 1
    _assert_nothing_written(tmp_path / "run")


def test_import_empty_file(tmp_path: Path):
    src = tmp_path / "empty.json"
    src.write_bytes(b"")
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "empty.json", "empty")
    _assert_nothing_written(tmp_path / "run")


def test_import_empty_array(tmp_path: Path):
    src = _write_mcc(tmp_path / "none.json", [])
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "none.json", "no questions")
    _assert_nothing_written(tmp_path / "run")


def test_import_non_utf8_names_line(tmp_path: Path):
    src = tmp_path / "latin1.json"
    text = json.dumps([GOOD_ITEM, {**GOOD_ITEM, "instruction": "Un café coûte 2 euros."}], indent=1, ensure_ascii=False)
    src.write_bytes(text.encode("latin-1"))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "café" in ln)
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, f"latin1.json:{line}:", "UTF-8")
    _assert_nothing_written(tmp_path / "run")


def test_import_unknown_format(tmp_path: Path):
    src = _write_mcc(tmp_path / "ok.json", [GOOD_ITEM])
    proc = run_cli("import", "gsm-magic", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "unknown import format 'gsm-magic'", "mcc-kd")
    _assert_nothing_written(tmp_path / "run")


def test_import_unknown_task_family(tmp_path: Path):
    src = _write_mcc(tmp_path / "ok.json", [GOOD_ITEM])
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"), "--task", "poetry")
    _assert_user_error(proc, "--task: unknown task family 'poetry'", "math")
    _assert_nothing_written(tmp_path / "run")


def test_import_missing_source_file(tmp_path: Path):
    proc = run_cli("import", "mcc-kd", str(tmp_path / "nope.json"), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "nope.json", "not found")
    _assert_nothing_written(tmp_path / "run")


def test_failed_import_keeps_the_previous_run_intact(tmp_path: Path):
    run = tmp_path / "run"
    good = _write_mcc(tmp_path / "good.json", [GOOD_ITEM, GOOD_ITEM])
    assert run_cli("import", "mcc-kd", str(good), "--out", str(run)).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert set(before) == {"questions.jsonl", "paths.jsonl"}
    bad = _write_mcc(tmp_path / "bad.json", [GOOD_ITEM, GOOD_ITEM, {"instruction": "x", "output": 7, "label": "1"}])
    _assert_user_error(run_cli("import", "mcc-kd", str(bad), "--out", str(run)), "bad.json:1:", "'output'")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# ---------------------------------------------------------------- import qr-distill (JSONL)


@pytest.mark.parametrize(
    ("line2", "needles"),
    [
        ('{"gold_answer": "1", "responses": ["a"] "question": "q"}', ("malformed JSON",)),
        ('{"responses": ["The answer is 1."], "question": "q"}', ("'gold_answer'", "missing required field")),
        ('{"gold_answer": "1", "responses": "The answer is 1.", "question": "q"}', ("'responses'", "expected list")),
        ('{"gold_answer": "1", "responses": ["a", "b"], "prompts": ["p"], "question": "q"}', ("'prompts'",)),
    ],
)
def test_import_qr_distill_bad_lines(tmp_path: Path, line2: str, needles: tuple[str, ...]):
    src = tmp_path / "anli.enriched.jsonl"
    good = {"gold_answer": "1", "responses": ["The answer is 1."], "question": "q", "dataset": "svamp"}
    src.write_text(json.dumps(good) + "\n" + line2 + "\n", encoding="utf-8")
    proc = run_cli("import", "qr-distill", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "anli.enriched.jsonl:2:", *needles)
    _assert_nothing_written(tmp_path / "run")


# ---------------------------------------------------------------- import --split / --append


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def _two_file_run(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A run made of a training file (with paths) and an appended dev set (questions only), via the CLI."""
    run = tmp_path / "run"
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    train = _write_mcc(tmp_path / "train.json", [GOOD_ITEM, {**GOOD_ITEM, "output": ["3 + 2 = 5.", "5"]}])
    dev = _write_mcc(tmp_path / "a" / "svamp-dev.json", [{**GOOD_ITEM, "output": ""}] * 3, indent=1)
    assert run_cli("import", "mcc-kd", str(train), "--out", str(run)).returncode == 0
    proc = run_cli("import", "mcc-kd", str(dev), "--out", str(run), "--split", "test", "--append")
    assert proc.returncode == 0, proc.stderr
    assert f"appended 3 questions and 0 paths into {run} (split test)" in proc.stdout
    return run, _snapshot(run)


def test_append_happy_path_through_the_cli(tmp_path: Path):
    run, files = _two_file_run(tmp_path)
    assert set(files) == {"questions.jsonl", "paths.jsonl"}
    qs = [json.loads(line) for line in files["questions.jsonl"].decode().splitlines()]
    assert [(q["id"], q["split"]) for q in qs] == [
        ("train-0", "train"), ("train-1", "train"), ("svamp-dev-0", "test"), ("svamp-dev-1", "test"),
        ("svamp-dev-2", "test"),
    ]  # fmt: skip
    assert len(files["paths.jsonl"].decode().splitlines()) == 3


def test_append_duplicate_ids_name_both_files_and_leave_the_run_as_it_was(tmp_path: Path):
    run, before = _two_file_run(tmp_path)
    # another file with the same stem: its ids collide with the first dev set's
    clash = _write_mcc(tmp_path / "b" / "svamp-dev.json", [GOOD_ITEM, GOOD_ITEM], indent=1)
    line = _user_error_line(run_cli("import", "mcc-kd", str(clash), "--out", str(run), "--append"))
    assert line.startswith(f"error: {clash}:2: field 'id': duplicate question id 'svamp-dev-0' ")
    assert f"(already in {run / 'questions.jsonl'}:3)" in line
    assert "a file named 'svamp-dev' is already in the run" in line
    assert _snapshot(run) == before
    # a real collision of explicit ids (qr-distill rows carry their own)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    row = {"gold_answer": "1", "responses": ["The answer is 1."], "question": "q"}
    a.write_text(json.dumps({**row, "id": "x1"}) + "\n" + json.dumps({**row, "id": "x2"}) + "\n")
    b.write_text(json.dumps({**row, "id": "y"}) + "\n" + json.dumps({**row, "id": "x2"}) + "\n")
    run2 = tmp_path / "run2"
    assert run_cli("import", "qr-distill", str(a), "--out", str(run2)).returncode == 0
    before2 = _snapshot(run2)
    line = _user_error_line(run_cli("import", "qr-distill", str(b), "--out", str(run2), "--append"))
    assert f"{b}:2: field 'id': duplicate question id 'x2' (already in {run2 / 'questions.jsonl'}:2)" in line
    assert "named" not in line and _snapshot(run2) == before2


def test_a_failed_append_leaves_the_run_byte_for_byte(tmp_path: Path):
    run, before = _two_file_run(tmp_path)
    items = [GOOD_ITEM] * 4 + [{"instruction": "x", "output": ["ok"], "label": None}]  # bad only at the very end
    bad = _write_mcc(tmp_path / "late-error.json", items, indent=1)
    _assert_user_error(
        run_cli("import", "mcc-kd", str(bad), "--out", str(run), "--append"), "late-error.json:", "'label'"
    )
    assert _snapshot(run) == before  # nothing appended, no temp files left
    dup = _write_mcc(tmp_path / "dup.json", [GOOD_ITEM], indent=1)
    assert run_cli("import", "mcc-kd", str(dup), "--out", str(run), "--append").returncode == 0
    _assert_user_error(run_cli("import", "mcc-kd", str(dup), "--out", str(run), "--append"), "'dup-0'", "already in")
    assert _snapshot(run)["paths.jsonl"].startswith(before["paths.jsonl"])


def test_append_needs_an_existing_run_and_split_must_be_known(tmp_path: Path):
    src = _write_mcc(tmp_path / "ok.json", [GOOD_ITEM])
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"), "--append")
    _assert_user_error(proc, "--append:", "questions.jsonl does not exist")
    _assert_nothing_written(tmp_path / "run")
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"), "--split", "validation")
    _assert_user_error(proc, "--split: unknown split 'validation'", "train, dev, test")
    _assert_nothing_written(tmp_path / "run")


@pytest.mark.parametrize(
    ("item", "needles"),
    [
        ({"instruction": "Cats? no options here", "label": "A"}, ("'instruction'", "no options")),
        (
            {"instruction": "Cats? Answer Choices:\nA. x\nB. y\n", "label": "C"},
            ("'label'", "'C' is not one of the 2 options A-B"),
        ),
    ],
)
def test_import_choice_errors_name_line_and_field(tmp_path: Path, item: dict, needles: tuple[str, ...]):
    ok = {"instruction": "Ok? Answer Choices:\nA. x\nB. y\n", "output": "", "label": "A"}
    src = _write_mcc(tmp_path / "csqa.json", [ok, {**item, "output": ""}], indent=1)
    line = next(i for i, ln in enumerate(src.read_text().splitlines(), 1) if ln == " {" and i > 2)
    proc = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "run"), "--task", "choice")
    _assert_user_error(proc, f"csqa.json:{line}:", *needles)
    _assert_nothing_written(tmp_path / "run")


def _user_error_line(proc) -> str:
    return _assert_user_error(proc)


# ---------------------------------------------------------------- questions --source FILE.jsonl

Q1 = '{"question": "1 + 1?", "answer": "2"}'


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (Q1 + '\n{"question": "2 + 2?" "answer": "4"}\n', (":2:", "malformed JSON")),
        (Q1 + '\n{"question": "2 + 2?"}\n', (":2:", "'answer'", "missing required field")),
        (Q1 + '\n\n{"answer": "4"}\n', (":3:", "'question'", "missing required field")),  # blank lines still count
        (Q1 + '\n{"question": 5, "answer": "4"}\n', (":2:", "'question'", "string")),
        (Q1 + '\n{"question": "q", "answer": "4", "split": "holdout"}\n', (":2:", "'split'")),
        (Q1 + '\n{"question": "q", "answer": "4", "choices": "[1, 2"}\n', None),  # not JSON: split on "|", valid
        (Q1 + '\n{"question": "q", "answer": "4", "task": "poetry"}\n', (":2:", "'task'", "unknown task family")),
        (Q1 + "\n[1, 2]\n", (":2:", "expected a JSON object")),
        ("", ("empty",)),
    ],
)
def test_questions_bad_jsonl(tmp_path: Path, content: str, needles: tuple[str, ...] | None):
    src = tmp_path / "qs.jsonl"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "run"
    proc = run_cli("questions", "--source", str(src), "--out", str(out))
    if needles is None:
        assert proc.returncode == 0, proc.stderr
        return
    _assert_user_error(proc, "qs.jsonl", *needles)
    _assert_nothing_written(out)


def test_questions_non_utf8_names_line(tmp_path: Path):
    src = tmp_path / "qs.jsonl"
    src.write_bytes((Q1 + "\n").encode() + '{"question": "café?", "answer": "1"}\n'.encode("latin-1"))
    proc = run_cli("questions", "--source", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "qs.jsonl:2:", "UTF-8")
    _assert_nothing_written(tmp_path / "run")


def test_questions_unknown_task_option(tmp_path: Path):
    src = tmp_path / "qs.jsonl"
    src.write_text(Q1 + "\n", encoding="utf-8")
    proc = run_cli("questions", "--source", f"file:{src}", "--out", str(tmp_path / "run"), "--task", "poetry")
    _assert_user_error(proc, "--task: unknown task family 'poetry'")  # the option, not a line of the file (issue 24)
    _assert_nothing_written(tmp_path / "run")


def test_questions_bad_csv_names_row_line(tmp_path: Path):
    src = tmp_path / "qs.csv"
    src.write_text("question,answer\n1 + 1?,2\n2 + 2?,\n", encoding="utf-8")
    proc = run_cli("questions", "--source", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "qs.csv:3:", "'answer'", "missing required field")
    _assert_nothing_written(tmp_path / "run")


def test_questions_unknown_source_kind(tmp_path: Path):
    proc = run_cli("questions", "--source", str(tmp_path / "qs.txt"), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "unknown question source", "qs.txt")
    _assert_nothing_written(tmp_path / "run")


def test_questions_duplicate_id(tmp_path: Path):
    src = tmp_path / "qs.jsonl"
    src.write_text('{"id": "a", "question": "x", "answer": "1"}\n{"id": "a", "question": "y", "answer": "2"}\n')
    proc = run_cli("questions", "--source", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, "qs.jsonl:2:", "'id'", "duplicate")
    _assert_nothing_written(tmp_path / "run")


# ---------------------------------------------------------------- inspect


@pytest.fixture
def good_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    src = _write_mcc(tmp_path / "good.json", [GOOD_ITEM, {**GOOD_ITEM, "output": ["3 + 2 = 6.", "So 5."]}])
    run_import("mcc-kd", src, run, ImportOptions())  # in-process: only the command under test is a subprocess
    return run


def _corrupt(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_inspect_good_run_counts(good_run: Path):
    proc = run_cli("inspect", str(good_run), "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert (stats["questions"], stats["paths"], stats["total"]["answer_ok"]) == (2, 3, 2)


@pytest.mark.parametrize(
    ("file", "lineno", "mutate", "needles"),
    [
        ("paths.jsonl", 2, lambda d: "{not json", ("paths.jsonl:2:", "malformed JSON")),
        ("paths.jsonl", 3, lambda d: json.dumps({**d, "sample": "first"}), ("paths.jsonl:3:", "'sample'")),
        ("paths.jsonl", 1, lambda d: json.dumps({k: v for k, v in d.items() if k != "text"}), ("'text'", "missing")),
        ("paths.jsonl", 2, lambda d: json.dumps({**d, "colour": "red"}), ("paths.jsonl:2:", "'colour'", "unknown")),
        ("paths.jsonl", 1, lambda d: json.dumps({**d, "schema_version": 99}), ("'schema_version'", "newer")),
        ("questions.jsonl", 2, lambda d: json.dumps({**d, "task": "poetry"}), ("questions.jsonl:2:", "'task'")),
        ("questions.jsonl", 1, lambda d: json.dumps({**d, "gold": 5}), ("questions.jsonl:1:", "'gold'")),
        ("questions.jsonl", 2, lambda d: json.dumps({**d, "id": ""}), ("questions.jsonl:2:", "'id'")),
    ],
)
def test_inspect_bad_records(good_run: Path, file: str, lineno: int, mutate, needles: tuple[str, ...]):
    path = good_run / file
    original = json.loads(path.read_text().splitlines()[lineno - 1])
    _corrupt(path, lineno, mutate(original))
    before = {p.name: p.read_bytes() for p in good_run.iterdir()}
    _assert_user_error(run_cli("inspect", str(good_run)), *needles)
    assert {p.name: p.read_bytes() for p in good_run.iterdir()} == before  # inspect writes nothing


def test_inspect_non_utf8_paths(good_run: Path):
    path = good_run / "paths.jsonl"
    path.write_bytes(path.read_bytes() + b'{"text": "\xff"}\n')
    _assert_user_error(run_cli("inspect", str(good_run)), "paths.jsonl:4:", "UTF-8")


def test_inspect_empty_questions(good_run: Path):
    (good_run / "questions.jsonl").write_bytes(b"")
    _assert_user_error(run_cli("inspect", str(good_run)), "questions.jsonl", "empty")


def test_inspect_missing_run(tmp_path: Path):
    _assert_user_error(run_cli("inspect", str(tmp_path / "nowhere")), "questions.jsonl", "not found")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ('question,answer\n1 + 1?,2\n"2 + 2?",4,surplus\n', ("qs.csv:3:", "more values than the 2 header columns")),
        ('question,answer\n"a question\nover two lines",2\n3 + 3?\n', ("qs.csv:4:", "'answer'", "missing")),
    ],
)
def test_questions_csv_row_shape(tmp_path: Path, content: str, needles: tuple[str, ...]):
    src = tmp_path / "qs.csv"
    src.write_text(content, encoding="utf-8")
    proc = run_cli("questions", "--source", str(src), "--out", str(tmp_path / "run"))
    _assert_user_error(proc, *needles)
    _assert_nothing_written(tmp_path / "run")
