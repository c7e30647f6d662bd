"""The ``hf:`` source: every built-in recipe on a small local dataset in the published dataset's real schema (its
column names, value shapes and split names), saved the way a user would (``save_to_disk``, a copy of the hub repo's
layout, a data file), loaded through the same ``hf:`` code path a hub load takes, checked end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from conftest import REPO, run_cli
from cotdistill.errors import CotdistillError, InputError
from cotdistill.records import read_questions
from cotdistill.sources import load_source
from cotdistill.tasks import get_family

ALL = {"train": 100, "dev": 100, "test": 100}


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path_factory, monkeypatch):
    """``load_dataset`` copies local data into the datasets cache: keep it out of the user's."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-cache")))


def hub_repo(root: Path, configs: dict[str, dict[str, list[dict]]], features: Features | None = None) -> Path:
    """A local copy of a hub repo's layout: README.md with its ``configs:`` YAML and one parquet file per split."""
    yaml = ["---", "configs:"]
    for config, splits in configs.items():
        yaml += [f"- config_name: {config}", "  data_files:"]
        folder = "data" if config == "default" else config
        (root / folder).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            Dataset.from_list(rows, features=features).to_parquet(
                str(root / folder / f"{split}-00000-of-00001.parquet")
            )
            yaml += [f"  - split: {split}", f"    path: {folder}/{split}-*"]
    (root / "README.md").write_text("\n".join([*yaml, "---", ""]), encoding="utf-8")
    return root


def saved(root: Path, splits: dict[str, list[dict]], features: Features | None = None) -> Path:
    """A DatasetDict written with ``save_to_disk`` under its real split names."""
    DatasetDict({k: Dataset.from_list(v, features=features) for k, v in splits.items()}).save_to_disk(str(root))
    return root


def by_split(qs) -> dict[str, list]:
    out: dict[str, list] = {}
    for q in qs:
        out.setdefault(q.split, []).append(q)
    return out


# ---------------------------------------------------------------- GSM8K (openai/gsm8k, configs main + socratic)

NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
GSM_ROWS = [
    {
        "question": NATALIA,
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72",
    },
    {
        "question": "A house costs $1,200 more than ... How much?",
        "answer": "1000 + 200 = <<1000+200=1200>>1200\n#### 1,200",
    },
    {"question": "The temperature fell by 5 degrees from 2. What is it now?", "answer": "2 - 5 = -3\n#### -3"},
]


def test_gsm8k_hub_layout_through_the_cli(tmp_path: Path):
    """The hub repo's own layout (two configs; the recipe picks ``main``), through ``cotdistill questions``."""
    socratic = [{**r, "answer": "How many? ** " + r["answer"]} for r in GSM_ROWS]
    repo = hub_repo(
        tmp_path / "openai" / "gsm8k",
        {"main": {"train": GSM_ROWS[:2], "test": GSM_ROWS[2:]}, "socratic": {"train": socratic, "test": socratic}},
    )
    run = tmp_path / "run"
    env = {"HF_HOME": str(tmp_path / "hf-home")}
    proc = run_cli("questions", "--out", str(run), "--source", f"hf:{repo}", "--train", "5", "--test", "5", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 questions" in proc.stdout
    qs = list(read_questions(run / "questions.jsonl"))
    assert [(q.id, q.split, q.task, q.gold, q.choices) for q in qs] == [
        ("gsm8k-train-0", "train", "math", "72", None),
        ("gsm8k-train-1", "train", "math", "1200", None),
        ("gsm8k-test-0", "test", "math", "-3", None),
    ]
    assert qs[0].question == NATALIA and qs[0].source == f"hf:{repo}"
    assert qs[0].metadata["gold_solution"].startswith("Natalia sold 48/2 = 24 clips in May.")  # annotations gone
    assert "####" not in qs[0].metadata["gold_solution"]
    assert get_family("math").is_correct("48 + 24 = 72. The answer is 72.", qs[0])

    # an explicit config is honoured: the socratic answers carry their "Sub-question? ** " prefix
    proc = run_cli("questions", "--out", str(run), "--source", f"hf:{repo}:socratic", "--train", "1", env=env)
    assert proc.returncode == 0, proc.stderr
    (q, *_) = read_questions(run / "questions.jsonl")
    assert q.id == "gsm8k-socratic-train-0" and q.metadata["gold_solution"].startswith("How many? ** ")


def test_gsm8k_answer_without_hashes_names_split_row_and_field(tmp_path: Path):
    repo = saved(tmp_path / "gsm8k", {"train": GSM_ROWS[:1], "test": [GSM_ROWS[2], {"question": "q", "answer": "5"}]})
    with pytest.raises(InputError) as e:
        list(load_source(f"hf:{repo}", ALL))
    assert str(e.value) == f"hf:{repo}[test]:1: field 'answer': no '#### <answer>' line"


# ---------------------------------------------------------------- SVAMP (ChilleD/SVAMP; tongyx361/svamp)

CHAL_777 = {
    "ID": "chal-777",
    "Body": "There are 87 oranges and 290 bananas in Philip's collection. If the bananas are organized into 2 groups "
    "and oranges are organized into 93 groups",
    "Question": "How big is each group of bananas?",
    "Equation": "( 290.0 / 2.0 )",
    "Answer": "145",
    "Type": "Common-Division",
}


def test_svamp_string_answers_and_question_concat(tmp_path: Path):
    """ChilleD/SVAMP: ``data/{train,test}`` parquet, ``Answer`` a string, ``question_concat`` = Body + Question."""
    row = {**CHAL_777, "question_concat": CHAL_777["Body"] + " " + CHAL_777["Question"]}
    other = {**row, "ID": "chal-1", "Answer": "2.5", "question_concat": "Half of 5? Tell me."}
    repo = hub_repo(tmp_path / "ChilleD" / "SVAMP", {"default": {"train": [row], "test": [other]}})
    qs = by_split(load_source(f"hf:{repo}", ALL))
    (tr,), (te,) = qs["train"], qs["test"]
    assert tr.question == row["question_concat"] and tr.gold == "145" and tr.task == "math"
    assert tr.metadata["equation"] == "( 290.0 / 2.0 )" and tr.metadata["id"] == "chal-777"
    assert (te.question, te.gold) == ("Half of 5? Tell me.", "2.5")


def test_svamp_float_answers_and_body_plus_question(tmp_path: Path):
    """The original SVAMP / tongyx361 schema: ``Answer`` float64, no ``question_concat``, a single test split."""
    rows = [
        {**CHAL_777, "Answer": 145.0},
        {"ID": "chal-2", "Body": "Dan had $ 3 left with him after he bought a candy bar. If he had $ 4 at the start",
         "Question": "How much did the candy bar cost?", "Equation": "( 4.0 - 3.0 )", "Answer": 1.0,
         "Type": "Subtraction"},
        {**CHAL_777, "ID": "chal-9", "Answer": 0.25},
    ]  # fmt: skip
    repo = saved(tmp_path / "tongyx361" / "svamp", {"test": rows})
    assert repo.joinpath("dataset_dict.json").exists()
    assert datasets.load_from_disk(str(repo))["test"].features["Answer"].dtype == "float64"
    qs = list(load_source(f"hf:{repo}", ALL))
    assert [(q.split, q.gold) for q in qs] == [("test", "145"), ("test", "1"), ("test", "0.25")]
    assert qs[1].question == (
        "Dan had $ 3 left with him after he bought a candy bar. If he had $ 4 at the start "
        "How much did the candy bar cost?"
    )
    assert get_family("math").equivalent("1", qs[1].gold)


# ---------------------------------------------------------------- MATH (EleutherAI/hendrycks_math; MATH-500)

POLAR_PROBLEM = (
    "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer in the form "
    "$(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$"
)
POLAR_SOLUTION = (
    "We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, if we draw the line ... $\\boxed{3}$ is $r$ ...\n\n[asy]\n"
    "dot((0,3), red);\n[/asy]\n\nTherefore, the polar coordinates are "
    "$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$"
)
POLAR_ANSWER = "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_math_configs_nested_braces_and_boxed_forms(tmp_path: Path):
    """The seven-config repo (two here): gold is the solution's *last* \\boxed{}, braces matched; ``\\boxed 5``
    and ``\\fbox{}`` count too."""
    precalc = [{"problem": POLAR_PROBLEM, "level": "Level 2", "type": "Precalculus", "solution": POLAR_SOLUTION}]
    algebra = [
        {"problem": "What is $1+1$?", "level": "Level 1", "type": "Algebra", "solution": "So it is $\\boxed 2$."},
        {"problem": "Half?", "level": "Level ?", "type": "Algebra", "solution": "$\\fbox{\\frac{1}{2}}$"},
        {"problem": "Percent?", "level": "Level 3", "type": "Algebra", "solution": "It is $\\boxed{10\\%}$."},
    ]
    repo = hub_repo(
        tmp_path / "EleutherAI" / "hendrycks_math",
        {"algebra": {"train": algebra, "test": algebra[:1]}, "precalculus": {"train": precalc, "test": precalc}},
    )
    with pytest.raises(CotdistillError, match="Config name is missing.*give a config as hf:NAME:CONFIG"):
        list(load_source(f"hf:{repo}", ALL))
    (q,) = load_source(f"hf:{repo}:precalculus", {"train": 0, "test": 5})
    assert (q.id, q.split, q.task, q.question, q.gold) == (
        "math-precalculus-test-0", "test", "math", POLAR_PROBLEM, POLAR_ANSWER
    )  # fmt: skip
    assert q.metadata["level"] == "Level 2" and q.metadata["gold_solution"] == POLAR_SOLUTION
    qs = list(load_source(f"hf:{repo}:algebra", {"train": 5, "test": 0}))
    assert [q.gold for q in qs] == ["2", "\\frac{1}{2}", "10\\%"]
    assert get_family("math").equivalent("0.5", qs[1].gold) and get_family("math").equivalent("10%", qs[2].gold)


def test_math_without_a_boxed_answer_names_the_field(tmp_path: Path):
    repo = saved(tmp_path / "hendrycks_math", {"train": [{"problem": "p", "level": "Level 1", "type": "Algebra",
                                                           "solution": "no box \\boxed{unclosed"}]})  # fmt: skip
    with pytest.raises(InputError, match=r"\[train\]:0: field 'solution': no \\boxed\{\} answer"):
        list(load_source(f"hf:{repo}", ALL))


def test_math500_answer_column_single_test_jsonl(tmp_path: Path):
    """HuggingFaceH4/MATH-500: one ``test.jsonl`` (split ``test``), ``answer`` already extracted, ``level`` an int."""
    row = {"problem": POLAR_PROBLEM, "solution": POLAR_SOLUTION, "answer": POLAR_ANSWER, "subject": "Precalculus",
           "level": 2, "unique_id": "test/precalculus/807.json"}  # fmt: skip
    repo = tmp_path / "HuggingFaceH4" / "MATH-500"
    repo.mkdir(parents=True)
    rows = [row, {**row, "answer": "5", "unique_id": "test/algebra/1.json"}]
    (repo / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    qs = list(load_source(f"hf:{repo}", ALL))
    assert [(q.id, q.split, q.gold) for q in qs] == [
        ("math500-test-0", "test", POLAR_ANSWER),
        ("math500-test-1", "test", "5"),
    ]
    assert qs[0].metadata["subject"] == "Precalculus" and qs[0].metadata["level"] == 2


# ---------------------------------------------------------------- ARC-Challenge (allenai/ai2_arc)

ARC_ROWS = [
    {"id": "Mercury_SC_405487",
     "question": "One year, the oak trees in a park began producing more acorns than usual. The next year, the "
     "population of chipmunks in the park also increased. Which best explains why there were more chipmunks the "
     "next year?",
     "choices": {"text": ["Shady areas increased.", "Food sources increased.", "Oxygen levels increased.",
                          "Available water increased."], "label": ["A", "B", "C", "D"]},
     "answerKey": "B"},
    {"id": "NYSEDREGENTS_2015_8_14", "question": "What is the primary source of energy for most ecosystems?",
     "choices": {"text": ["soil nutrients", "the sun", "decomposers", "producers"], "label": ["1", "2", "3", "4"]},
     "answerKey": "2"},
    {"id": "five", "question": "Which has five options?",
     "choices": {"text": ["a", "b", "c", "d", "e"], "label": ["A", "B", "C", "D", "E"]}, "answerKey": "E"},
    {"id": "three", "question": "Which has three?", "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]},
     "answerKey": "1"},
]  # fmt: skip


def test_arc_numeric_labels_become_letters_by_position(tmp_path: Path):
    repo = hub_repo(
        tmp_path / "allenai" / "ai2_arc",
        {"ARC-Challenge": {"train": ARC_ROWS[:1], "validation": ARC_ROWS[1:2], "test": ARC_ROWS[2:]},
         "ARC-Easy": {"train": ARC_ROWS[3:], "validation": ARC_ROWS[3:], "test": ARC_ROWS[3:]}},
    )  # fmt: skip
    qs = by_split(load_source(f"hf:{repo}", ALL))  # the recipe's config: ARC-Challenge
    assert {k: [(q.task, q.gold) for q in v] for k, v in qs.items()} == {
        "train": [("choice", "B")],
        "dev": [("choice", "B")],  # answerKey "2" of labels 1-4: the second option
        "test": [("choice", "E"), ("choice", "A")],
    }
    dev = qs["dev"][0]
    assert dev.choices == ["soil nutrients", "the sun", "decomposers", "producers"]
    assert dev.question == "What is the primary source of energy for most ecosystems?"
    assert qs["test"][1].choices == ["x", "y", "z"] and qs["test"][0].id == "arc_challenge-test-0"
    assert get_family("choice").is_correct("The sun powers it. The answer is (B).", dev)


def test_a_run_config_names_the_source_recipe_and_splits(tmp_path: Path):
    """``questions.source: hf:...`` with ``options`` in a config file: a copy whose path says nothing."""
    repo = saved(tmp_path / "copy", {"train": ARC_ROWS[:1], "validation": ARC_ROWS[1:2], "test": ARC_ROWS[2:]})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"questions:\n  source: 'hf:{repo}'\n  train: 5\n  dev: 5\n  test: 5\n"
        "  options: {recipe: arc_challenge, splits: {train: [train, validation], dev: null, test: test}}\n"
    )
    run = tmp_path / "run"
    proc = run_cli("questions", "--out", str(run), "-c", str(cfg), env={"HF_HOME": str(tmp_path / "hf-home")})
    assert proc.returncode == 0, proc.stderr
    qs = list(read_questions(run / "questions.jsonl"))
    assert [(q.id, q.split, q.gold) for q in qs] == [
        ("arc_challenge-train-0", "train", "B"),
        ("arc_challenge-validation-0", "train", "B"),
        ("arc_challenge-test-0", "test", "E"),
        ("arc_challenge-test-1", "test", "A"),
    ]


def test_arc_answer_key_outside_the_labels(tmp_path: Path):
    repo = saved(tmp_path / "ai2_arc", {"train": [{**ARC_ROWS[1], "answerKey": "5"}]})
    with pytest.raises(InputError, match=r"\[train\]:0: field 'answerKey': '5' is not one of the option labels"):
        list(load_source(f"hf:{repo}", ALL))


# ---------------------------------------------------------------- StrategyQA (ChilleD/StrategyQA)


def test_strategyqa_bool_answers_facts_list_or_string_and_recipe_override(tmp_path: Path):
    rows = [
        {"qid": "q1", "term": "Genghis Khan", "description": "d",
         "question": "Are more people today related to Genghis Khan than Julius Caesar?", "answer": True,
         "facts": "Julius Caesar had three children. Genghis Khan had sixteen children.", "decomposition": "[]"},
        {"qid": "q2", "term": "t", "description": "d", "question": "Is the sun cold?", "answer": False,
         "facts": "The sun is hot.", "decomposition": "[]"},
    ]  # fmt: skip
    repo = saved(tmp_path / "my-copy", {"train": rows[:1], "test": rows[1:]})
    with pytest.raises(CotdistillError, match="no built-in recipe.*questions.options.recipe=NAME"):
        list(load_source(f"hf:{repo}", ALL))
    qs = list(load_source(f"hf:{repo}", ALL, options={"recipe": "strategyqa"}))
    assert [(q.split, q.task, q.gold, q.choices) for q in qs] == [
        ("train", "yesno", "yes", None),
        ("test", "yesno", "no", None),
    ]
    assert qs[0].question.startswith("Are more people") and qs[0].metadata["facts"].startswith("Julius Caesar")
    listed = saved(tmp_path / "StrategyQA", {"train": [{**rows[0], "facts": ["a.", "b."], "decomposition": ["x"]}]})
    (q,) = load_source(f"hf:{listed}", ALL)
    assert q.metadata["facts"] == "a. b." and q.gold == "yes"


# ---------------------------------------------------------------- ANLI (facebook/anli: train_r1 ... test_r3)

NLI = ["entailment", "neutral", "contradiction"]
ANLI_FEATURES = Features(
    {"uid": Value("string"), "premise": Value("string"), "hypothesis": Value("string"),
     "label": ClassLabel(names=["entailment", "neutral", "contradiction"]), "reason": Value("string")}
)  # fmt: skip
IDRIS = {
    "uid": "ed5c37ab-77c5-4dbc-ba75-8fd617b19712",
    "premise": '"Idris Sultan (born January 1993) is a Tanzanian Actor and comedian, actor and radio host who won '
    "the Big Brother Africa-Hotshot...",
    "hypothesis": "Idris Sultan was born in the first month of the year preceding 1994.",
    "label": 0,
    "reason": "",
}


def test_anli_rounds_classlabel_and_split_override(tmp_path: Path):
    """The hub layout with the nine custom split names kept; label a ClassLabel -> its name."""
    splits = {
        f"{kind}_r{k}": [{**IDRIS, "uid": f"{kind}{k}-{i}", "label": (i + k) % 3} for i in range(2)]
        for k in (1, 2, 3)
        for kind in ("train", "dev", "test")
    }
    repo = hub_repo(tmp_path / "facebook" / "anli", {"plain_text": splits}, features=ANLI_FEATURES)
    qs = by_split(load_source(f"hf:{repo}", {"train": 3, "dev": 6, "test": 1}))
    assert [q.id for q in qs["train"]] == ["anli-train_r1-0", "anli-train_r1-1", "anli-train_r2-0"]  # rounds in order
    assert [q.metadata["uid"] for q in qs["dev"]] == [f"dev{k}-{i}" for k in (1, 2, 3) for i in range(2)]
    assert [q.gold for q in qs["dev"]] == [
        "neutral",
        "contradiction",
        "contradiction",
        "entailment",
        "entailment",
        "neutral",
    ]
    assert len(qs["test"]) == 1 and qs["test"][0].task == "label"
    q = qs["train"][0]
    assert q.question == f"Premise: {IDRIS['premise']}\nHypothesis: {IDRIS['hypothesis']}"
    only_r3 = {"splits": {"train": "train_r3", "dev": "dev_r3", "test": ["test_r3"]}}
    qs = by_split(load_source(f"hf:{repo}", ALL, options=only_r3))
    assert {k: [q.metadata["uid"] for q in v] for k, v in qs.items()} == {
        "train": ["train3-0", "train3-1"], "dev": ["dev3-0", "dev3-1"], "test": ["test3-0", "test3-1"]
    }  # fmt: skip
    with pytest.raises(CotdistillError, match="splits.test: the dataset has no split 'test_r4'.*train_r1"):
        list(load_source(f"hf:{repo}", ALL, options={"splits": {"test": "test_r4"}}))
    # the same nine splits written by save_to_disk keep their names (load_dataset would merge them into three)
    disk = saved(tmp_path / "saved" / "anli", splits, features=ANLI_FEATURES)
    qs = list(load_source(f"hf:{disk}", {"train": 0, "dev": 0, "test": 6}))
    assert [q.id for q in qs] == [f"anli-test_r{k}-{i}" for k in (1, 2, 3) for i in range(2)]
    assert [q.gold for q in qs] == [NLI[(i + k) % 3] for k in (1, 2, 3) for i in range(2)]


def test_anli_int_labels_from_plain_json_and_bad_label(tmp_path: Path):
    """A data file without the ClassLabel feature: the ints are mapped by the recipe; -1 is an error."""
    f = tmp_path / "anli" / "test.jsonl"
    f.parent.mkdir()
    f.write_text("".join(json.dumps({**IDRIS, "label": k}) + "\n" for k in (2, 1, -1)), encoding="utf-8")
    with pytest.raises(InputError, match=r"\[test\]:2: field 'label': -1 is not 0 \(entailment\)"):
        list(load_source(f"hf:{f}", ALL))
    qs = list(load_source(f"hf:{f}", {"test": 2}))
    assert [(q.split, q.gold) for q in qs] == [("test", "contradiction"), ("test", "neutral")]


# ---------------------------------------------------------------- BIG-bench Date Understanding (BBH; full BIG-bench)

BBH_ROWS = [
    {"input": "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?\nOptions:\n(A) 12/11/1937\n"
     "(B) 12/25/1937\n(C) 01/04/1938\n(D) 12/04/1937\n(E) 12/25/2006\n(F) 07/25/1937", "target": "(B)"},
    {"input": "In the UK, people usually put the day before the month when formatting the date. Therefore, today is "
     "02/01/1987 to them. What is the date a month ago in MM/DD/YYYY?\nOptions:\n(A) 12/02/1986\n(B) 12/01/1986\n"
     "(C) 03/02/1986\n(D) 12/02/2032\n(E) 12/02/2062", "target": "(A)"},
    {"input": "Q?\nOptions:\n(A) x\n(B) y\n(C) z", "target": "(C)"},
]  # fmt: skip


def test_bbh_date_options_inside_input_and_carved_splits(tmp_path: Path):
    """lukaemon/bbh: one config per task, a single ``test`` split; ours carved from it with no overlap."""
    repo = hub_repo(
        tmp_path / "lukaemon" / "bbh",
        {"boolean_expressions": {"test": [{"input": "True and False is", "target": "False"}]},
         "date_understanding": {"test": BBH_ROWS}},
    )  # fmt: skip
    (only,) = by_split(load_source(f"hf:{repo}", ALL)).values()  # default: test only
    assert len(only) == 3 and {q.split for q in only} == {"test"}
    q = only[0]
    assert q.question == "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?"
    assert q.choices == ["12/11/1937", "12/25/1937", "01/04/1938", "12/04/1937", "12/25/2006", "07/25/1937"]
    assert (q.task, q.gold) == ("choice", "B") and len(only[1].choices) == 5 and only[1].gold == "A"
    carve = {"splits": {"train": "test", "dev": "test", "test": "test"}}
    qs = list(load_source(f"hf:{repo}", {"train": 2, "dev": 0, "test": 5}, options=carve))
    assert [(q.id, q.split) for q in qs] == [("bbh_date-test-0", "train"), ("bbh_date-test-1", "train"),
                                              ("bbh_date-test-2", "test")]  # fmt: skip


def test_bbh_target_beyond_the_options(tmp_path: Path):
    repo = saved(tmp_path / "bbh", {"test": [BBH_ROWS[2], {**BBH_ROWS[2], "target": "(F)"}]})
    with pytest.raises(InputError, match=r"\[test\]:1: field 'target': '\(F\)' is not one of the 3 options A-C"):
        list(load_source(f"hf:{repo}", ALL))


def test_bigbench_date_scores_pick_the_letter_and_ambiguous_rows_are_skipped(tmp_path: Path):
    opts = ["12/11/1937", "12/25/1937", "01/04/1938", "12/04/1937", "12/25/2006", "07/25/1937"]
    row = {
        "idx": 0,
        "inputs": "Q: Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?\n"
        + "".join(f"  choice: {o}\n" for o in opts)
        + "A:",
        "targets": ["12/25/1937"],
        "multiple_choice_targets": opts,
        "multiple_choice_scores": [0, 1, 0, 0, 0, 0],
    }
    two_right = {**row, "idx": 1, "multiple_choice_scores": [1, 1, 0, 0, 0, 0]}
    last = {**row, "idx": 2, "multiple_choice_scores": [0, 0, 0, 0, 0, 1]}
    repo = hub_repo(
        tmp_path / "tasksource" / "bigbench", {"date_understanding": {"train": [row, two_right], "validation": [last]}}
    )
    qs = list(load_source(f"hf:{repo}", ALL))
    assert [(q.id, q.split, q.gold) for q in qs] == [("bigbench_date-train-0", "train", "B"),
                                                      ("bigbench_date-validation-0", "test", "F")]  # fmt: skip
    assert qs[0].question == "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?"
    assert qs[0].choices == opts and qs[0].task == "choice"


# ---------------------------------------------------------------- CommonsenseQA (tau/commonsense_qa)

CSQA_ROW = {
    "id": "075e483d21c29a511267ef62bedc0461",
    "question": "The sanctions against the school were a punishing blow, and they seemed to what the efforts the "
    "school had made to change?",
    "question_concept": "punishing",
    "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["ignore", "enforce", "authoritarian", "yell at", "avoid"]},
    "answerKey": "A",
}


def test_csqa_validation_is_the_test_set_and_the_unlabelled_test_split_is_refused(tmp_path: Path):
    test_rows = [{**CSQA_ROW, "id": f"t{i}", "answerKey": ""} for i in range(3)]
    repo = saved(
        tmp_path / "tau" / "commonsense_qa",
        {"train": [CSQA_ROW, {**CSQA_ROW, "id": "b", "answerKey": "D"}], "validation": [{**CSQA_ROW, "answerKey": "E"}],
         "test": test_rows},
    )  # fmt: skip
    qs = by_split(load_source(f"hf:{repo}", ALL))
    assert {k: [q.gold for q in v] for k, v in qs.items()} == {"train": ["A", "D"], "test": ["E"]}
    q = qs["train"][0]
    assert (
        q.choices == ["ignore", "enforce", "authoritarian", "yell at", "avoid"] and q.question == CSQA_ROW["question"]
    )
    assert q.task == "choice" and q.metadata["question_concept"] == "punishing"
    with pytest.raises(CotdistillError) as e:
        list(load_source(f"hf:{repo}", ALL, options={"splits": {"test": "test"}}))
    assert "[test]: none of its 3 rows has a gold answer" in str(e.value) and "use validation" in str(e.value)


# ---------------------------------------------------------------- loading: errors, options, the offline hub


def test_a_single_saved_dataset_and_unknown_options(tmp_path: Path):
    ds = Dataset.from_list([{**CSQA_ROW, "answerKey": "B"}])
    ds.save_to_disk(str(tmp_path / "commonsense_qa"))  # state.json at the top: load_from_disk, split "train"
    (q,) = load_source(f"hf:{tmp_path / 'commonsense_qa'}", ALL)
    assert (q.split, q.gold) == ("train", "B")
    with pytest.raises(CotdistillError, match="questions.options.difficulty: unknown option of the hf: source"):
        list(load_source(f"hf:{tmp_path / 'commonsense_qa'}", ALL, options={"difficulty": 2}))
    with pytest.raises(CotdistillError, match="--task math: the 'csqa' recipe's questions are choice questions"):
        list(load_source(f"hf:{tmp_path / 'commonsense_qa'}", ALL, task="math"))
    with pytest.raises(CotdistillError, match="unknown recipe 'gsm9k'"):
        list(load_source(f"hf:{tmp_path / 'commonsense_qa'}", ALL, options={"recipe": "gsm9k"}))
    with pytest.raises(CotdistillError, match="no such file or directory"):
        list(load_source(f"hf:{tmp_path / 'nope' / 'gsm8k'}", ALL))


NO_OFFLINE_FLAGS_NOR_PROXIES = (
    "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
)  # fmt: skip


def _cli_with_timeout(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HOME": str(tmp_path / "hf-home"), **env}
    cmd = [sys.executable, "-m", "cotdistill.cli", *args]
    # a hang (the hub client's retries take ~24 s) fails the test instead of stalling the suite
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=60)


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"HF_HUB_OFFLINE": "1"}, "offline mode: HF_HUB_OFFLINE is set"),
        (
            {"HF_ENDPOINT": "http://127.0.0.1:9", **dict.fromkeys(NO_OFFLINE_FLAGS_NOR_PROXIES, "")},
            "no connection to 127.0.0.1",  # online mode, nothing listening: the 3 s probe, not ~24 s of retries
        ),
    ],
)
def test_a_hub_name_offline_is_one_line_exit_2(tmp_path: Path, env: dict[str, str], why: str):
    run = tmp_path / "run"
    proc = _cli_with_timeout(tmp_path, env, "questions", "--out", str(run), "--source", "hf:openai/gsm8k")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    line = proc.stderr.strip()
    assert "'openai/gsm8k' is a Hugging Face Hub dataset and cannot be reached offline" in line
    assert why in line and "save_to_disk" in line and "questions.options.recipe=gsm8k" in line
    assert not (run / "questions.jsonl").exists()


def test_every_recipe_is_in_the_readme_table():
    from cotdistill.sources.hf_recipes import RECIPES

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("| recipe | hub ids |", 1)[1].split("\n\n", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines() if line.startswith("| `")}
    assert len(rows) == len(RECIPES)
    for r in RECIPES:
        assert r.name in rows, r.name
        assert f"`{r.hub[0]}`" in rows[r.name] and f"| {r.task} |" in rows[r.name], r.name
