"""Importers of multi-path datasets (in-process): what lands in questions.jsonl and paths.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

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
