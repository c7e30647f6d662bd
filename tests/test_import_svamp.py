"""The real SVAMP multi-path data (MCC-KD format, ../shared): import + inspect give the pinned numbers."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

# 350 questions x 10 teacher paths; lenient extraction finds the gold answer in 2378 of them (67.9%).
N_QUESTIONS, N_PATHS, N_CORRECT = 350, 3500, 2378


def test_import_and_inspect_svamp(svamp_json: Path, tmp_path: Path):
    run = tmp_path / "runs" / "svamp"
    proc = run_cli("import", "mcc-kd", str(svamp_json), "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    assert f"imported {N_QUESTIONS} questions and {N_PATHS} paths" in proc.stdout
    assert sorted(p.name for p in run.iterdir()) == ["paths.jsonl", "questions.jsonl"]

    questions = [json.loads(line) for line in (run / "questions.jsonl").read_text().splitlines()]
    paths = [json.loads(line) for line in (run / "paths.jsonl").read_text().splitlines()]
    assert len(questions) == N_QUESTIONS and len(paths) == N_PATHS
    assert len({q["id"] for q in questions}) == N_QUESTIONS
    assert all(q["schema_version"] == 1 and q["task"] == "math" for q in questions)
    first = questions[0]
    assert first["id"] == "train-0" and first["gold"] == "32" and first["question"].startswith("Danny collects")
    assert [p["sample"] for p in paths[:10]] == list(range(10))
    assert {p["question_id"] for p in paths[:10]} == {"train-0"}
    assert paths[0]["answer"] == "32" and paths[0]["style"] == "cot" and paths[0]["teacher"] == "teacher"

    proc = run_cli("inspect", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["questions"] == N_QUESTIONS
    assert stats["paths"] == N_PATHS
    assert stats["paths_with_unknown_question"] == 0
    assert stats["total"]["answer_ok"] == N_CORRECT
    assert abs(stats["total"]["answer_ok_rate"] - N_CORRECT / N_PATHS) < 1e-4
    assert 0.6 < N_CORRECT / N_PATHS < 0.72  # "about two thirds"
    assert stats["by_teacher"]["teacher"]["paths"] == N_PATHS
    assert stats["by_style"]["cot"]["answer_ok"] == N_CORRECT

    proc = run_cli("inspect", str(run))
    assert proc.returncode == 0, proc.stderr
    assert f"{N_QUESTIONS} questions, {N_PATHS} paths, answer correct {N_CORRECT}/{N_PATHS} (67.9%)" in proc.stdout

    # importing again gives byte-identical files
    again = tmp_path / "again"
    assert run_cli("import", "mcc-kd", str(svamp_json), "--out", str(again)).returncode == 0
    for name in ("questions.jsonl", "paths.jsonl"):
        assert (again / name).read_bytes() == (run / name).read_bytes()
