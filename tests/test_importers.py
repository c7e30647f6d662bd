"""Importers of multi-path datasets (in-process): what lands in questions.jsonl and paths.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotdistill.config import STYLES
from cotdistill.records import read_paths, read_questions
from cotdistill.sources.importers import ImportOptions, run_import


def test_mcc_kd_accepts_output_string_and_path_key(tmp_path: Path):
    src = tmp_path / "mini.json"
    items = [
        {"instruction": "  3 + 4?\n", "output": "3 + 4 = 7", "label": 7},
        {"instruction": "Is 5 odd?", "path": ["5 is odd, so yes.", "No."], "label": "yes"},
    ]
    src.write_text(json.dumps(items), encoding="utf-8")
    assert run_import("mcc-kd", src, tmp_path / "run", ImportOptions(teacher="gpt", style="facts")) == (2, 3)
    qs = list(read_questions(tmp_path / "run" / "questions.jsonl"))
    assert [(q.id, q.question, q.gold, q.source) for q in qs] == [
        ("mini-0", "3 + 4?", "7", "mcc-kd:mini.json"),
        ("mini-1", "Is 5 odd?", "yes", "mcc-kd:mini.json"),
    ]
    ps = list(read_paths(tmp_path / "run" / "paths.jsonl"))
    assert [(p.id, p.answer) for p in ps] == [
        ("mini-0|gpt|facts|0", "7"),
        ("mini-1|gpt|facts|0", "5"),
        ("mini-1|gpt|facts|1", None),
    ]


def test_mcc_kd_with_yesno_task(tmp_path: Path):
    src = tmp_path / "yn.json"
    src.write_text(json.dumps([{"instruction": "Is 5 odd?", "output": ["5 is odd, so yes.", "No."], "label": "Yes"}]))
    run_import("mcc-kd", src, tmp_path / "run", ImportOptions(task="yesno"))
    assert [p.answer for p in read_paths(tmp_path / "run" / "paths.jsonl")] == ["yes", "no"]


def test_qr_distill_six_styles_and_reference_flags(tmp_path: Path):
    src = tmp_path / "anli.enriched.jsonl"
    responses = [f"Reasoning {i}. The answer is {'neutral' if i else 'false'}." for i in range(6)]
    row = {
        "id": "a1",
        "dataset": "anli",
        "question": "Premise: P. Hypothesis: H.",
        "prompts": [f"prompt {i}" for i in range(6)],
        "responses": responses,
        "preds": ["contradiction"] + ["neutral"] * 5,
        "correct_flags": [False] + [True] * 5,
        "gold_answer": ["neutral"],
    }
    src.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert run_import("qr-distill", src, tmp_path / "run", ImportOptions(teacher="ref")) == (1, 6)
    (q,) = read_questions(tmp_path / "run" / "questions.jsonl")
    assert (q.id, q.task, q.gold) == ("a1", "label", "neutral")
    ps = list(read_paths(tmp_path / "run" / "paths.jsonl"))
    assert [p.style for p in ps] == list(STYLES)  # six responses: one per style, in order
    assert [p.answer for p in ps] == ["contradiction"] + ["neutral"] * 5
    assert ps[0].metadata == {"reference_pred": "contradiction", "reference_correct": False}
    assert ps[3].prompt == "prompt 3" and ps[3].id == "a1|ref|program|0"


# ---------------------------------------------------------------- splits, --append, choice questions

CSQA_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mcckd-dev" / "csqa-dev.json"


def _mcc(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps(items, indent=1), encoding="utf-8")
    return path


def test_split_and_append_add_questions_and_paths(tmp_path: Path):
    run = tmp_path / "run"
    train = _mcc(tmp_path / "train.json", [{"instruction": f"{k} + 1?", "output": [f"{k} + 1 = {k + 1}."] * 2,
                                            "label": k + 1} for k in range(3)])  # fmt: skip
    dev = _mcc(
        tmp_path / "svamp-dev.json", [{"instruction": f"{k} + 2?", "output": "", "label": k + 2} for k in range(2)]
    )
    more = _mcc(tmp_path / "more.json", [{"instruction": "9 + 1?", "output": ["9 + 1 = 10."], "label": 10}])
    assert run_import("mcc-kd", train, run, ImportOptions()) == (3, 6)
    paths_before = (run / "paths.jsonl").read_bytes()
    assert run_import("mcc-kd", dev, run, ImportOptions(split="test", append=True)) == (2, 0)  # questions only
    assert (run / "paths.jsonl").read_bytes() == paths_before  # "" is no path: nothing added
    assert run_import("mcc-kd", more, run, ImportOptions(split="dev", append=True, teacher="t2")) == (1, 1)
    qs = list(read_questions(run / "questions.jsonl"))
    assert [(q.id, q.split) for q in qs] == [
        ("train-0", "train"), ("train-1", "train"), ("train-2", "train"),
        ("svamp-dev-0", "test"), ("svamp-dev-1", "test"), ("more-0", "dev"),
    ]  # fmt: skip
    ps = list(read_paths(run / "paths.jsonl"))
    assert len(ps) == 7 and ps[-1].question_id == "more-0" and ps[-1].teacher == "t2"
    assert (run / "paths.jsonl").read_bytes().startswith(paths_before)
    # without --append an import replaces both files
    assert run_import("mcc-kd", more, run, ImportOptions(split="test")) == (1, 1)
    assert [(q.id, q.split) for q in read_questions(run / "questions.jsonl")] == [("more-0", "test")]
    assert len(list(read_paths(run / "paths.jsonl"))) == 1


def test_hold_out_records_a_seeded_sample_of_a_train_file_as_dev(tmp_path: Path):
    """``--hold-out N``: N of the file's questions, chosen by ``--hold-out-seed``, land in dev with their paths;
    the same seed picks the same questions, another seed others; bad counts and splits are one-line errors (exit 2)
    that leave the run as it was."""
    from conftest import run_cli

    src = _mcc(tmp_path / "train.json", [{"instruction": f"{k} + 1?", "output": [f"{k} + 1 = {k + 1}."],
                                          "label": k + 1} for k in range(20)])  # fmt: skip

    def dev_ids(run: Path, seed: int) -> list[str]:
        assert run_import("mcc-kd", src, run, ImportOptions(hold_out=5, hold_out_seed=seed)) == (20, 20)
        qs = list(read_questions(run / "questions.jsonl"))
        assert sum(q.split == "train" for q in qs) == 15 and len(list(read_paths(run / "paths.jsonl"))) == 20
        return [q.id for q in qs if q.split == "dev"]

    a, b, c = dev_ids(tmp_path / "a", 0), dev_ids(tmp_path / "b", 0), dev_ids(tmp_path / "c", 1)
    assert len(a) == 5 and a == b and a != c
    before = (tmp_path / "a" / "questions.jsonl").read_bytes()
    r = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "a"), "--hold-out", "20")
    assert r.returncode == 2 and "train.json: --hold-out 20: the file has only 20 questions" in r.stderr
    r = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "a"), "--hold-out", "3", "--split", "test")
    assert r.returncode == 2 and "--hold-out carves dev questions from a train file" in r.stderr
    assert (tmp_path / "a" / "questions.jsonl").read_bytes() == before
    r = run_cli("import", "mcc-kd", str(src), "--out", str(tmp_path / "d"), "--hold-out", "4", "--hold-out-seed", "2")
    assert r.returncode == 0 and "imported 20 questions and 20 paths" in r.stdout and "4 of them held out" in r.stdout


def test_choice_items_take_their_options_out_of_the_instruction(tmp_path: Path):
    items = [
        {"instruction": "What could cats do if they were taller? Answer Choices:\nA. annoy\nB. eat meat\n"
         "C. open doors\nD. need food\nE. jog\n", "output": "", "label": "C"},
        {"instruction": "Where is Paris?\nAnswer Choices:\n(A) France\n(B) Peru\n", "output": "Paris is in France. (A)",
         "label": "A"},
        {"instruction": "Pick one: Answer Choices: (A) red (B) blue (C) green", "output": "", "label": "(c)"},
    ]  # fmt: skip
    src = _mcc(tmp_path / "csqa-dev.json", items)
    assert run_import("mcc-kd", src, tmp_path / "run", ImportOptions(task="choice", split="test")) == (3, 1)
    qs = list(read_questions(tmp_path / "run" / "questions.jsonl"))
    assert [(q.question, q.choices, q.gold, q.task, q.split) for q in qs] == [
        ("What could cats do if they were taller?", ["annoy", "eat meat", "open doors", "need food", "jog"], "C",
         "choice", "test"),
        ("Where is Paris?", ["France", "Peru"], "A", "choice", "test"),
        ("Pick one:", ["red", "blue", "green"], "C", "choice", "test"),
    ]  # fmt: skip
    (p,) = read_paths(tmp_path / "run" / "paths.jsonl")
    assert p.answer == "A" and p.question_id == "csqa-dev-1"


def test_the_real_csqa_dev_set_imports_as_choice_questions(tmp_path: Path):
    if not CSQA_SHARED.exists():
        pytest.skip(f"real data not available: {CSQA_SHARED} is absent (../shared is not beside this checkout)")
    assert run_import("mcc-kd", CSQA_SHARED, tmp_path / "run", ImportOptions(task="choice", split="test")) == (1221, 0)
    qs = list(read_questions(tmp_path / "run" / "questions.jsonl"))
    assert all(q.choices and len(q.choices) == 5 and q.gold in "ABCDE" for q in qs)
    assert all("Answer Choices" not in q.question for q in qs)
    assert (qs[0].question, qs[0].choices[2], qs[0].gold) == (
        "What could cats do if they were taller?",
        "open doors",
        "C",
    )


def test_cotdistill_run_on_an_imported_run_needs_no_teachers(tmp_path: Path):
    """The README's real-data recipe: import, then ``cotdistill run`` on a config with ``questions.source:
    imported`` and no ``teachers:``; the pre-flight check accepts it and generate keeps the imported paths."""
    import yaml

    from conftest import run_cli

    src = _mcc(tmp_path / "train.json", [{"instruction": f"{k} + 1?", "output": [f"{k} + 1 = {k + 1}."],
                                          "label": k + 1} for k in range(6)])  # fmt: skip
    run = tmp_path / "run"
    assert run_cli("import", "mcc-kd", str(src), "--out", str(run), "--hold-out", "2").returncode == 0
    cfg = {"questions": {"source": "imported"}, "filter": {"judge": {"kind": "none"}, "consensus": {"enabled": False}},
           "students": [{"name": "s", "kind": "preset", "preset": "tiny-gpt2"}]}  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = run_cli("run", str(tmp_path / "c.yaml"), "--run-dir", str(run), "--until", "filter")
    assert r.returncode == 0, r.stderr
    assert "paths.jsonl: 6 paths" in r.stderr and "kept 6 of 6 paths" in r.stderr
    del cfg["questions"]  # lab questions and no teachers: still the one-line error
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = run_cli("run", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "lab"), "--until", "filter")
    assert r.returncode == 2 and "no teachers configured" in r.stderr
