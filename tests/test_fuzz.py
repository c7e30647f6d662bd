"""Fuzzing every loader and parser with hypothesis (1000 seeded examples each): arbitrary input either parses or
raises a CotdistillError (the CLI's one-line exit 2); never any other exception, never a hang."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotdistill.config import load_config
from cotdistill.config_io import parse_overrides
from cotdistill.errors import CotdistillError
from cotdistill.quality.arithmetic import arithmetic_verdict, find_calculations
from cotdistill.quality.judges import parse_judge_reply
from cotdistill.records import Question, read_jsonl
from cotdistill.records import ReasoningPath as PathRecord
from cotdistill.sources.files import iter_rows
from cotdistill.sources.importers import ImportOptions, import_mcc_kd, import_qr_distill
from cotdistill.tasks import FAMILIES

FUZZ = settings(
    max_examples=1000,
    derandomize=True,  # seeded: the same 1000 examples every run
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_TMP = Path(tempfile.mkdtemp(prefix="cotdistill-fuzz-"))

GOOD_Q = Question(id="q1", task="math", question="What is 2 plus 3?", gold="5").model_dump_json()
GOOD_P = PathRecord(id="p1", question_id="q1", teacher="t", style="cot", sample=0, text="2+3=5. The answer is 5.")
GOOD_P = GOOD_P.model_dump_json()

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=5),
    max_leaves=12,
)


def _mutated_line(base: str) -> st.SearchStrategy[bytes]:
    """A valid record with one field replaced, removed or added, or cut short, or raw bytes."""
    rec = json.loads(base)
    keys = sorted(rec)
    replaced = st.tuples(st.sampled_from(keys), json_values).map(lambda kv: json.dumps({**rec, kv[0]: kv[1]}))
    removed = st.sampled_from(keys).map(lambda k: json.dumps({x: v for x, v in rec.items() if x != k}))
    cut = st.integers(0, len(base)).map(lambda n: base[:n])
    return st.one_of(replaced, removed, cut, json_values.map(json.dumps)).map(str.encode) | st.binary(max_size=200)


def _file(name: str, data: bytes) -> Path:
    p = _TMP / name
    p.write_bytes(data)
    return p


def _must_parse_or_user_error(fn, *args) -> None:
    try:
        result = fn(*args)
        if hasattr(result, "__next__"):
            list(result)
    except CotdistillError as e:
        assert "\n" not in str(e).strip(), str(e)  # the CLI prints it as one line


@FUZZ
@given(st.lists(_mutated_line(GOOD_Q), min_size=0, max_size=4))
def test_fuzz_read_questions(lines: list[bytes]) -> None:
    _must_parse_or_user_error(read_jsonl, _file("q.jsonl", b"\n".join(lines)), Question)


@FUZZ
@given(st.lists(_mutated_line(GOOD_P), min_size=0, max_size=4))
def test_fuzz_read_paths(lines: list[bytes]) -> None:
    _must_parse_or_user_error(read_jsonl, _file("p.jsonl", b"\n".join(lines)), PathRecord)


_section = st.sampled_from(["train", "teachers", "students", "filter", "generate", "questions", "eval", "seed", "x"])
config_docs = st.dictionaries(_section, json_values, max_size=4).map(lambda d: yaml.safe_dump(d).encode())


@FUZZ
@given(config_docs | st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_fuzz_load_config(data: bytes) -> None:
    _must_parse_or_user_error(load_config, _file("c.yaml", data))


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=3))
def test_fuzz_overrides(overrides: list[str]) -> None:
    def both(o):
        parse_overrides(o)
        load_config(None, o)

    _must_parse_or_user_error(both, overrides)


texts = st.text(max_size=300) | st.from_regex(
    r"(Step \d: )?[-\d.,/ ]{0,12}[+\-*/x×÷=][-\d.,/ ]{0,12}(=\s?-?[\d.,/]{0,8})?( The answer is -?[\d.,/]{0,6}\.)?"
)


@FUZZ
@given(texts, st.sampled_from(sorted(FAMILIES)), st.booleans())
def test_fuzz_task_extract(text: str, family: str, lenient: bool) -> None:
    q = Question(id="q", task=family, question="?", gold="A", choices=["x", "y"] if family == "choice" else None)
    got = FAMILIES[family].extract(text, q, lenient=lenient)
    assert got is None or isinstance(got, str)


@FUZZ
@given(texts)
def test_fuzz_arithmetic_judge(text: str) -> None:
    ok, reason = arithmetic_verdict(text)
    assert isinstance(ok, bool) and isinstance(reason, str)
    for c in find_calculations(text):
        assert c is not None


@FUZZ
@given(st.none() | st.text(max_size=200) | st.sampled_from(["VALID", "INVALID - 2+2=5", "**Verdict:** invalid"]))
def test_fuzz_judge_reply(reply: str | None) -> None:
    v = parse_judge_reply(reply)
    assert v is not None


mcc_items = st.lists(
    st.fixed_dictionaries(
        {"instruction": st.text(max_size=30) | st.integers(), "label": json_values},
        optional={"output": json_values, "extra": json_values},
    ),
    max_size=3,
)


@FUZZ
@given(
    mcc_items.map(lambda x: json.dumps(x).encode())
    | st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_fuzz_import_mcc_kd(data: bytes) -> None:
    _must_parse_or_user_error(import_mcc_kd, _file("m.json", data), ImportOptions())


@FUZZ
@given(st.lists(json_values.map(json.dumps) | st.text(max_size=40), max_size=4))
def test_fuzz_import_qr_distill(lines: list[str]) -> None:
    _must_parse_or_user_error(
        import_qr_distill, _file("r.jsonl", "\n".join(lines).encode("utf-8", "surrogatepass")), ImportOptions()
    )


@FUZZ
@given(st.sampled_from([".jsonl", ".json", ".csv"]), st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_source_file_readers(suffix: str, data: bytes) -> None:
    _must_parse_or_user_error(iter_rows, _file("src" + suffix, data))
