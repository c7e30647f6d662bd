"""The arithmetic judge: stated calculations re-computed, on hand-made cases, real SVAMP paths and lab-like faults."""

from __future__ import annotations

import json
import random

import pytest

from conftest import run_cli
from cotdistill.quality.arithmetic import arithmetic_verdict, find_calculations


@pytest.mark.parametrize(
    "text",
    [
        "Danny found a total of 15 + 18 = 33 bottle caps",
        "Danny initially found 15 bottle caps + 18 wrappers = 33 items.",
        "87 (wrappers) – 35 (bottle caps) = 52",
        "20% of 50 = 10",
        "50 * 20% = 10",
        "$1,200 + $300 = $1,500",
        "3 x 4 = 12 and 3 × 4 = 12 and 12 ÷ 4 = 3",
        "2 + 3 * 4 = 14",
        "12 * 3 = 36 - 5 = 31",
        "10 / 3 = 3.33 and 53 ÷ 3 = 17.666",
        "(3 + 4) * 2 = 14",
        "- 34 - 15 = 19",  # a bullet, not a minus sign
        "1. 5 + 3 = 8",
        "-5 + 3 = -2",
        "249 pages/book x 1 book/3 days = 83 pages/day",
        "x + 25 - 25 = 43 - 25",  # algebra: not a calculation
        "X * 7 + 6 = 41",
        "2 slices / 1 pizza = 28 slices / x pizzas",
        "2x + 3 = 7",
        "if x == 3 + 4:",
        "He ate the 1st + 2nd = both.",
    ],
)
def test_true_or_unchecked_statements_pass(text: str) -> None:
    ok, reason = arithmetic_verdict(text)
    assert ok, reason


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("he now has 67 + 35 = 103 items", "67 + 35 = 103"),
        ("20% of 50 = 12", "20% of 50 = 12"),
        ("3 × 4 = 13", "3 × 4 = 13"),
        ("12 * 3 = 36 - 5 = 30", "36 - 5 = 30"),
        ("(3 + 4) * 2 = 15", "(3 + 4) * 2 = 15"),
        ("So 1,114 students / 99 seats = 11.2444 buses", "1,114 students / 99 seats = 11.2444"),
        ("Total: $30144 - $646 = $29598.", "$30144 - $646 = $29598"),
        ("- 6 storks + 2 birds + 3 birds = 8", "6 storks + 2 birds + 3 birds = 8"),
    ],
)
def test_false_statements_are_named(text: str, named: str) -> None:
    ok, reason = arithmetic_verdict(text)
    assert not ok
    assert named in reason


def test_every_calculation_is_listed_with_its_verdict() -> None:
    calcs = find_calculations("First 15 + 18 = 33.\nThen 33 * 2 = 67.\nFinally 67 - 7 = 60.")
    assert [(c.text, c.ok) for c in calcs] == [("15 + 18 = 33", True), ("33 * 2 = 67", False), ("67 - 7 = 60", True)]
    assert calcs[1].computed == 66


# ---- real SVAMP paths, verified by hand ----------------------------------------------------------------------
# false calculations (answer right or wrong) and fault-free paths, each checked by hand against the text
HAND_FALSE = {
    "train-208|teacher|cot|2": "$30144 - $646 = $29598",  # = 29498; final answer still right
    "train-79|teacher|cot|4": "14 - 24 = 10",  # = -10; final answer still right
    "train-81|teacher|cot|6": "732+682 = 769",  # = 1414
    "train-152|teacher|cot|9": "34044 + 424944 = 459988",  # = 458988
    "train-93|teacher|cot|7": "51,935 * 77 = 3,994,795",  # = 3,998,995
    "train-107|teacher|cot|8": "460 - 899 = 439",  # = -439
}
HAND_TRUE = [
    "train-0|teacher|cot|0",  # 15 + 18 = 33, 67 + 33 = 100, 35 + 33 = 68, 100 - 68 = 32
    "train-0|teacher|cot|5",  # 35 + 52 = 87, 15 + 20 = 35, 87 (wrappers) – 35 (bottle caps) = 52
    "train-241|teacher|cot|6",  # 249 pages/book x 1 book/3 days = 83 pages/day
    "train-171|teacher|cot|4",  # x + 25 - 25 = 43 - 25: algebra, nothing false
    "train-311|teacher|cot|0",  # X * 7 + 6 = 41 (algebra); (41 - 6) / 7 = 5
    "train-153|teacher|cot|2",  # a proportion with an unknown
]


_IMPORTED: dict[str, dict[str, dict]] = {}


@pytest.fixture
def svamp_paths(svamp_json, tmp_path_factory) -> dict[str, dict]:
    """The real SVAMP paths by id, imported once per module through `cotdistill import mcc-kd`."""
    if "paths" not in _IMPORTED:
        out = tmp_path_factory.mktemp("svamp")
        r = run_cli("import", "mcc-kd", str(svamp_json), "--out", str(out))
        assert r.returncode == 0, r.stderr
        with open(out / "paths.jsonl", encoding="utf-8") as f:
            _IMPORTED["paths"] = {json.loads(line)["id"]: json.loads(line) for line in f}
    return _IMPORTED["paths"]


def test_real_paths_with_a_false_calculation_are_flagged(svamp_paths) -> None:
    for pid, stmt in HAND_FALSE.items():
        ok, reason = arithmetic_verdict(svamp_paths[pid]["text"])
        assert not ok, pid
        assert stmt in reason, (pid, reason)


def test_real_fault_free_paths_pass(svamp_paths) -> None:
    for pid in HAND_TRUE:
        ok, reason = arithmetic_verdict(svamp_paths[pid]["text"])
        assert ok, (pid, reason)
        # and they do contain checked calculations (except pure algebra)
    assert len(find_calculations(svamp_paths["train-0|teacher|cot|0"]["text"])) == 4


def test_real_data_flag_rate_is_plausible(svamp_paths) -> None:
    """Most real paths have no false step; the judge must not flag wholesale (a loose check that could fail)."""
    flagged = sum(not arithmetic_verdict(p["text"])[0] for p in svamp_paths.values())
    assert 0 < flagged < 0.05 * len(svamp_paths)


# ---- lab-contract paths: plain a op b = c steps, injected faults --------------------------------------------
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}
PHRASES = [
    "{name} has {a} {thing}. After that: {a} {op} {b} = {c}.",
    "Step {k}: {a} {op} {b} = {c} {thing}",
    "We compute {a} {op} {b} = {c}, so there are {c} {thing}.",
    "# {a} {op} {b} = {c}\nvalue = {a} {op} {b}",
    "- {a} {thing} {op} {b} {thing} = {c} {thing}",
]


def lab_like_path(rng: random.Random, fault: str | None) -> tuple[str, int, int]:
    """A 2-4 step path following the lab contract; returns (text, stated final answer, true answer)."""
    steps = rng.randint(2, 4)
    cur = rng.randint(2, 60)
    lines, truth, stated = [], cur, cur
    fault_at = rng.randrange(steps)
    for k in range(steps):
        op = rng.choice("+-*/")
        if op == "/":
            b = rng.choice([d for d in range(2, 10) if stated % d == 0] or [1])
        elif op == "*":
            b = rng.randint(2, 9)
        else:
            b = rng.randint(1, 40)
        c_true = OPS[op](stated, b)
        c = c_true
        if k == fault_at and fault == "spurious":
            c = c_true + rng.choice([-3, -2, -1, 1, 2, 10])  # the statement is false, the next step uses the truth
        if k == fault_at and fault == "wrong":
            c = c_true + rng.choice([-2, -1, 1, 3])  # and it propagates
        phrase = rng.choice(PHRASES)
        lines.append(
            phrase.format(name="Ann", thing=rng.choice(["apples", "red pens", "cards"]), a=stated, op=op, b=b, c=c, k=k)
        )
        truth = OPS[op](truth, b) if k else OPS[op](cur, b)
        stated = c if fault == "wrong" else c_true
    lines.append(f"The answer is {stated}.")
    return "\n".join(lines), stated, truth


def test_lab_contract_fault_recall_and_false_alarms() -> None:
    from cotdistill.records import Question
    from cotdistill.tasks import get_family

    rng = random.Random(0)
    fam = get_family("math")
    caught = {"spurious": 0, "wrong": 0}
    n_fault = 300
    for fault in caught:
        for _ in range(n_fault):
            text, stated, truth = lab_like_path(rng, fault)
            q = Question(id="q", task="math", question="?", gold=str(truth))
            answer_ok = fam.is_correct(text, q)
            if fault == "spurious":
                assert answer_ok  # the contract: the final answer stays right
            ok, _ = arithmetic_verdict(text)
            caught[fault] += int(not ok or not answer_ok)
    assert caught == {"spurious": n_fault, "wrong": n_fault}  # recall 100%
    n_clean = 1000
    rejected = 0
    for _ in range(n_clean):
        text, stated, truth = lab_like_path(rng, None)
        rejected += int(not arithmetic_verdict(text)[0])
    assert rejected < 0.01 * n_clean
