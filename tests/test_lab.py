"""The reasoning lab: seeded generators with exact solutions, and synthetic teachers with recorded faults."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli
from cotdistill.config import STYLES, RunConfig, TeacherConfig
from cotdistill.errors import ConfigError, CotdistillError
from cotdistill.lab import generate_questions, solve_question, write_lab_paths
from cotdistill.lab.runner import default_teachers
from cotdistill.lab.synthetic import SyntheticBackend, parse_profile
from cotdistill.records import Question, load_questions, read_paths
from cotdistill.rundir import RunDir
from cotdistill.stages.questions import write_questions
from cotdistill.tasks import get_family
from cotdistill.tasks.base import marker_spans


def lab_requests(questions, teacher: str, styles):
    """The generate stage's requests of one synthetic teacher (seed 0, one sample)."""
    from cotdistill.stages.generate import build_requests
    from cotdistill.teachers.styles import select_styles

    return build_requests(TeacherConfig(name=teacher), list(questions), select_styles(list(styles), []), 1, 0)


# a stated calculation, as the arithmetic-judge contract reads one: NUMBER (op NUMBER)+ = NUMBER
_CALC = re.compile(r"(?<![\w/])(\d+(?:\s*[-+*×x/÷]\s*\d+)+)\s*=\s*(\d+)(?![\w/])")


def calculations(text: str) -> list[tuple[str, bool]]:
    """Every ``a op b = c`` in ``text`` with whether it is true (left to right, integers)."""
    out = []
    for m in _CALC.finditer(text):
        expr = m.group(1).replace("×", "*").replace("x", "*").replace("÷", "/")
        value = eval(expr, {"__builtins__": {}})  # digits and + - * / only, by the regex
        out.append((m.group(0), math.isclose(value, int(m.group(2)))))
    return out


def _cfg(train: int, dev: int = 0, test: int = 0, seed: int = 0, options: dict | None = None) -> RunConfig:
    return RunConfig.model_validate(
        {"seed": seed, "questions": {"train": train, "dev": dev, "test": test, "options": options or {}}}
    )


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default lab run: 300 training questions x 3 default teachers x 6 styles (5400 paths)."""
    run = tmp_path_factory.mktemp("lab")
    write_questions(RunDir.at(run), _cfg(300))
    write_lab_paths(run, seed=0)
    return run


def test_same_seed_same_files_different_seed_different_questions(tmp_path: Path) -> None:
    files = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_questions(RunDir.at(tmp_path / name), _cfg(30, 6, 9, seed=seed))
        write_lab_paths(tmp_path / name, seed=seed)
        files[name] = (
            (tmp_path / name / "questions.jsonl").read_bytes(),
            (tmp_path / name / "paths.jsonl").read_bytes(),
        )
    assert files["a"] == files["b"]
    qa = [q.question for q in load_questions(tmp_path / "a" / "questions.jsonl").values()]
    qc = [q.question for q in load_questions(tmp_path / "c" / "questions.jsonl").values()]
    assert len(set(qa) & set(qc)) < len(qa) // 4
    assert files["a"][1] != files["c"][1]


def test_splits_never_share_a_question_and_ids_are_unique() -> None:
    # tiny number range: duplicates are frequent, so the de-duplication across splits really works
    opts = {"arith": {"steps": [2], "max_number": 5, "max_factor": 2}, "compare": {"steps": [2], "max_number": 5}}
    qs = list(generate_questions(["arith", "date", "compare"], {"train": 150, "dev": 60, "test": 60}, 1, opts))
    assert Counter(q.split for q in qs) == {"train": 150, "dev": 60, "test": 60}
    assert len({q.id for q in qs}) == len(qs)
    by_split = {s: {q.question for q in qs if q.split == s} for s in ("train", "dev", "test")}
    assert sum(len(v) for v in by_split.values()) == len(qs)  # no duplicate within or across splits
    assert not (by_split["train"] & by_split["dev"]) and not (by_split["train"] & by_split["test"])


def test_questions_carry_exact_solutions_and_families() -> None:
    qs = list(generate_questions(["arith", "date", "compare"], {"train": 300}, 5))
    assert Counter(q.task for q in qs) == {"math": 100, "choice": 100, "yesno": 100}
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for q in qs:
        steps = q.metadata["solution"]
        assert steps, q.id
        for s in steps:
            assert ops[s["op"]](s["a"], s["b"]) == s["result"] and s["result"] >= 0 and s["text"]
        sol = solve_question(q)
        assert sol.answer == q.gold
        if q.task == "math":
            assert str(steps[-1]["result"]) == q.gold
        if q.task == "choice":
            assert 4 <= len(q.choices) <= 6 and len(set(q.choices)) == len(q.choices)
    yes = sum(q.gold == "yes" for q in qs if q.task == "yesno")
    assert 30 <= yes <= 70  # balanced yes/no


def test_knobs_steps_distractors_choices_and_bad_knobs() -> None:
    opts = {"arith": {"steps": [4], "distractors": 1}, "date": {"choices": [6]}, "compare": {"steps": [3]}}
    qs = list(generate_questions(["arith", "date", "compare"], {"train": 60}, 2, opts))
    for q in qs:
        if q.task == "math":
            assert len(q.metadata["solution"]) == 4
            assert len(re.findall(r"[.?]", q.question)) == len(q.metadata["facts"]) + 2  # + distractor + ask
        elif q.task == "choice":
            assert len(q.choices) == 6
        else:
            assert len(q.metadata["solution"]) == 3
    one = {"arith": {"steps": [1]}, "compare": {"steps": [1]}}
    for q in generate_questions(["arith", "compare"], {"train": 40}, 3, one):  # the bench's easiest setting
        sol = q.metadata["solution"]
        assert len(sol) == 1, q.question
        if q.task == "math":
            assert str(sol[0]["result"]) == q.gold
    for bad in ([0], [5], []):
        with pytest.raises(ConfigError, match="questions.options.arith.steps"):
            list(generate_questions(["arith"], {"train": 1}, 0, {"arith": {"steps": bad}}))
    with pytest.raises(ConfigError, match="questions.options.compare.steps"):
        list(generate_questions(["compare"], {"train": 1}, 0, {"compare": {"steps": [4]}}))
    with pytest.raises(ConfigError, match="questions.options.arith.stepz: unknown knob"):
        list(generate_questions(["arith"], {"train": 1}, 0, {"arith": {"stepz": [2]}}))
    with pytest.raises(CotdistillError, match="unknown lab task"):
        list(generate_questions(["arithm"], {"train": 1}, 0))


def test_fault_free_paths_correct_and_wrong_answer_paths_wrong(lab_run: Path) -> None:
    qs = load_questions(lab_run / "questions.jsonl")
    kinds = Counter()
    for p in read_paths(lab_run / "paths.jsonl"):
        q = qs[p.question_id]
        fam = get_family(q.task)
        faults = [f["kind"] for f in p.metadata["faults"]]
        assert len(faults) <= 1
        kind = faults[0] if faults else "clean"
        kinds[kind] += 1
        strict = fam.extract(p.text, q)
        assert strict == p.answer
        if kind in ("clean", "spurious"):
            assert fam.equivalent(strict, q.gold), p.text
            # the answer marker appears once, in the last line, in the family's own format
            assert len(marker_spans(p.text)) == 1 and p.text.endswith(fam.format_answer(q.gold))
        elif kind == "wrong_answer":
            assert strict is not None and not fam.equivalent(strict, q.gold), p.text
        elif kind == "truncation":
            assert strict is None and fam.extract(p.text, q, lenient=False) is None
        else:  # format drift: strict extraction misses it, lenient finds the right answer
            assert strict is None
            assert fam.equivalent(fam.extract(p.text, q, lenient=True), q.gold), p.text
    assert kinds["clean"] > 3000 and min(kinds[k] for k in ("wrong_answer", "spurious", "truncation", "format_drift"))
    assert sum(kinds.values()) == 5400


def test_calculation_contract_for_the_arithmetic_judge(lab_run: Path) -> None:
    """Each step of a clean path is stated as a true ``a op b = c``; a spurious path has exactly one false one."""
    qs = load_questions(lab_run / "questions.jsonl")
    seen = Counter()
    for p in read_paths(lab_run / "paths.jsonl"):
        q = qs[p.question_id]
        faults = {f["kind"]: f for f in p.metadata["faults"]}
        calcs = calculations(p.text)
        false = [c for c, ok in calcs if not ok]
        if not faults:
            assert not false, (false, p.text)
            stated = {c.replace(" ", "").replace("×", "*").replace("x", "*").replace("÷", "/") for c, _ in calcs}
            for s in q.metadata["solution"]:
                assert f"{s['a']}{s['op']}{s['b']}={s['result']}" in stated, (s, p.text)
            seen["clean"] += 1
        elif "spurious" in faults:
            assert len(false) == 1, (false, p.text)
            f = faults["spurious"]
            assert false[0].endswith(f"= {f['stated']}")
            seen["spurious"] += 1
        elif "wrong_answer" in faults:
            assert false, p.text  # the slipped step is a false statement
            seen["wrong"] += 1
    assert seen["clean"] > 3000 and seen["spurious"] > 100 and seen["wrong"] > 200


def test_inspect_rates_match_the_profiles(lab_run: Path) -> None:
    r = run_cli("inspect", str(lab_run), "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    profiles = {t.name: parse_profile(t) for t in default_teachers()}
    for key, row in stats["by_teacher_style"].items():
        teacher, style = key.split("/")
        expected = profiles[teacher].expected_correct(style)
        n = row["paths"]
        assert n == 300
        sigma = math.sqrt(max(expected * (1 - expected), 0.01) / n)
        assert abs(row["answer_ok_rate"] - expected) < 4 * sigma + 0.01, (key, row["answer_ok_rate"], expected)
    teachers = stats["by_teacher"]
    assert teachers["careful"]["answer_ok_rate"] > teachers["verbose"]["answer_ok_rate"] + 0.05
    assert teachers["verbose"]["answer_ok_rate"] > teachers["sloppy"]["answer_ok_rate"] + 0.15
    assert teachers["verbose"]["mean_chars"] > 1.2 * teachers["sloppy"]["mean_chars"]
    assert set(stats["by_style"]) == set(STYLES)


def test_backend_interface_deterministic_and_errors() -> None:
    qs = list(generate_questions(["arith", "date", "compare"], {"train": 9}, 0))
    t = default_teachers()[2]
    reqs = list(lab_requests(qs, t.name, STYLES))
    got1: dict[str, str] = {}
    SyntheticBackend(t, 7).generate(reqs, lambda r, c: got1.__setitem__(r.key, c.text))
    got2: dict[str, str] = {}
    SyntheticBackend(t, 7).generate(list(reversed(reqs)), lambda r, c: got2.__setitem__(r.key, c.text))
    assert got1 == got2 and len(got1) == len(reqs)  # independent of order
    got3: dict[str, str] = {}
    SyntheticBackend(t, 8).generate(reqs, lambda r, c: got3.__setitem__(r.key, c.text))
    assert got3 != got1
    plain = Question(id="x", task="math", question="What is 2 + 2?", gold="4")
    req = lab_requests([plain], t.name, ["cot"])[0]
    c = SyntheticBackend(t, 0).complete(req)
    assert c.text is None and "not a lab question" in c.error
    with pytest.raises(ConfigError, match="teacher 'bad'.*sum to"):
        SyntheticBackend(TeacherConfig(name="bad", profile={"faults": {"wrong_answer": 0.8, "truncation": 0.5}}), 0)
    with pytest.raises(ConfigError, match="styles.poem: unknown style"):
        SyntheticBackend(TeacherConfig(name="bad", profile={"styles": {"poem": {"spurious": 0.1}}}), 0)


def test_lab_source_through_the_cli(tmp_path: Path) -> None:
    r = run_cli("questions", "--out", str(tmp_path), "--source", "lab:date,compare", "--train", "4", "--dev", "2",
                "--test", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    qs = list(load_questions(tmp_path / "questions.jsonl").values())
    assert Counter(q.task for q in qs) == {"choice": 4, "yesno": 4}
    bad = run_cli("questions", "--out", str(tmp_path / "b"), "--set", "questions.options.date.choicez=[4]")
    assert bad.returncode == 2 and "unknown knob" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "options",
    [
        {"arith": {"steps": [4], "max_number": 50, "distractors": 2}, "compare": {"steps": [3], "max_number": 50}},
        {"arith": {"steps": [2], "max_number": 5, "max_factor": 2}, "date": {"max_offset": 60, "choices": [2]}},
        {"date": {"max_offset": 6, "choices": [10], "distractors": 3}, "compare": {"max_gap": 1, "distractors": 1}},
    ],
)
def test_every_knob_setting_keeps_the_contract(options: dict) -> None:
    """Under any knobs and a fault-heavy teacher: clean paths right and true, faults as recorded."""
    qs = list(generate_questions(["arith", "date", "compare"], {"train": 90}, 11, options))
    rates = {"wrong_answer": 0.25, "spurious": 0.25, "truncation": 0.1, "format_drift": 0.1}
    t = TeacherConfig(name="t", profile={"verbosity": 0.5, "faults": rates})
    backend = SyntheticBackend(t, 0)
    kinds = Counter()
    for req in lab_requests(qs, "t", STYLES):
        c = backend.complete(req)
        q, fam = req.question, get_family(req.question.task)
        kind = c.metadata["faults"][0]["kind"] if c.metadata["faults"] else "clean"
        kinds[kind] += 1
        got = fam.extract(c.text, q)
        false = [x for x, ok in calculations(c.text) if not ok]
        if kind in ("clean", "spurious"):
            assert fam.equivalent(got, q.gold) and len(false) == (kind == "spurious"), c.text
        elif kind == "wrong_answer":
            assert got is not None and not fam.equivalent(got, q.gold) and false, c.text
        else:
            assert got is None
    n = sum(kinds.values())
    for kind, rate in rates.items():
        # spurious needs two steps and a slip needs a wrong answer that exists: a little below the profile rate
        assert rate - 0.1 < kinds[kind] / n < rate + 0.05, (kind, kinds)


def test_repo_config_uses_the_packaged_roster() -> None:
    from cotdistill.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "lab.yaml")
    assert [t.model_dump() for t in cfg.teachers] == [t.model_dump() for t in default_teachers()]
    assert cfg.questions.source == "lab:arith,date,compare"
    qs = list(generate_questions(["arith", "date", "compare"], {"train": 3}, 0, cfg.questions.options))
    assert len(qs) == 3


def test_lab_judge_catches_every_arith_fault_and_accepts_clean_paths(lab_run: Path) -> None:
    from cotdistill.lab.judge import judge_lab_path, stated_calculations

    assert stated_calculations("2 + 3 * 4 = 14, 12 ÷ 4 = 3, 7 x 6 = 43, on 01/09/2021 = ") == [
        ("2 + 3 * 4 = 14", True),
        ("12 ÷ 4 = 3", True),
        ("7 x 6 = 43", False),
    ]
    qs = load_questions(lab_run / "questions.jsonl")
    verdicts = Counter()
    for p in read_paths(lab_run / "paths.jsonl"):
        q = qs[p.question_id]
        kind = p.metadata["faults"][0]["kind"] if p.metadata["faults"] else "clean"
        valid, reason = judge_lab_path(q, p.text)
        verdicts[(kind, valid)] += 1
        if kind == "clean":
            assert valid, (reason, p.text)
        elif kind in ("spurious", "wrong_answer"):
            assert not valid and reason.startswith("false calculation"), p.text
    assert verdicts[("spurious", False)] > 100 and verdicts[("wrong_answer", False)] > 200
