"""The report's routing section (issue 20): selection rates with and without fallbacks, and the router
diagnostics of ``logs/routing_rates.jsonl`` (probability mean/std, fallback share, Spearman)."""

from __future__ import annotations

import json
from pathlib import Path

from cotdistill.report import routing_rates, write_report
from cotdistill.rundir import RunDir


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_routing_section_shows_rates_without_fallbacks_and_the_diagnostics(tmp_path):
    run = tmp_path / "run"
    routing = []
    for j in range(4):  # cot: student a opens 2 by itself; the other two paths fell back: one to a, one to b
        for student, gate, fb in (("a", int(j != 3), j == 2), ("b", int(j == 3), j == 3)):
            routing.append({"schema_version": 1, "step": 0, "epoch": 0, "question_id": f"q{j}",
                            "path_id": f"q{j}|t|cot|0", "teacher": "t", "style": "cot", "student": student,
                            "gate": gate, "prob": 0.5, "fallback": fb})  # fmt: skip
    _jsonl(run / "logs" / "routing.jsonl", routing)
    diag = [
        {"kind": "style", "epoch": 0, "style": "cot", "student": "a", "n": 4, "rate": 0.75, "rate_no_fallback": 0.5},
        {"kind": "student", "epoch": 0, "student": "a", "n": 4, "prob_mean": 0.61, "prob_std": 0.234,
         "rate": 0.75, "rate_no_fallback": 0.5, "fallback_share": 0.5, "fallback_rate": 0.5, "spearman": -0.62},
        {"kind": "student", "epoch": 0, "student": "b", "n": 4, "prob_mean": 0.4, "prob_std": 0.1,
         "rate": 0.25, "rate_no_fallback": 0.0, "fallback_share": 0.5, "fallback_rate": 0.5, "spearman": None},
    ]  # fmt: skip
    _jsonl(run / "logs" / "routing_rates.jsonl", diag)
    assert routing_rates(run / "logs" / "routing.jsonl")["a"][0]["cot"] == (4, 3)
    assert routing_rates(run / "logs" / "routing.jsonl", fallbacks=False)["a"][0]["cot"] == (4, 2)
    _, md_path, _ = write_report(RunDir.at(run))
    md = md_path.read_text()
    assert "| 0 | cot | 75.0% | 25.0% |" in md  # with fallbacks
    assert "| 0 | cot | 50.0% | 0.0% |" in md  # without
    assert "| 0 | a | 0.610 | 0.234 | 75.0% | 50.0% | 50.0% | 50.0% | -0.620 |" in md
    assert "| 0 | b | 0.400 | 0.100 | 25.0% | 0.0% | 50.0% | 50.0% | - |" in md
    assert "Spearman" in md
