"""COMPACT's weight log read back (issue 21): the report's COMPACT section (weights, the paper variant's signals,
the top-weight share, the trajectory figure) and the plot module's per-group means and top-weight shares."""

from __future__ import annotations

import json

import pytest

from cotdistill.report.document import Figure, Section, Table
from cotdistill.report.sections import compact_section
from cotdistill.training.methods.compact.plot import (
    mean_weights,
    moving_average,
    plot_weight_trajectory,
    top_weight_share,
)


def write_log(path, rows):
    recs = []
    for step, qid, teacher, w in rows:
        recs.append({"schema_version": 1, "step": step, "epoch": 0, "question_id": qid, "teacher": teacher,
                     "weight": w, "branches": 2, "S_MI": 0.1, "S_cons": 1.0 if teacher == "a" else 0.5,
                     "S_PPL": 2.0, "L_MCon": None if teacher == "b" else 0.01})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


ROWS = [(0, "q1", "a", 0.6), (0, "q1", "b", 0.4), (0, "q2", "a", 0.5), (0, "q2", "b", 0.5), (1, "q1", "a", 0.2),
        (1, "q1", "b", 0.8)]  # fmt: skip


def test_report_section_shows_signals_and_top_weight_share(tmp_path):
    sec = Section("compact", "COMPACT teacher weights", "logs/compact_weights.jsonl")
    compact_section(sec, write_log(tmp_path / "w.jsonl", ROWS))
    table = next(p for p in sec.parts if isinstance(p, Table))
    assert table.headers == ["teacher", "records", "mean weight", "mean S_MI", "mean S_cons", "mean S_PPL",
                             "mean L_MCon", "top weight"]  # fmt: skip
    rows = {r[0]: r for r in table.rows}
    # 3 decisions: a tops q1@0, ties q2@0 (half each), b tops q1@1 -> a 1.5/3, b 1.5/3
    assert rows["a"] == ["a", "3", "0.433", "0.100", "1.000", "2.000", "0.010", "50.0%"]
    assert rows["b"][-2:] == ["-", "50.0%"]  # no L_MCon for b
    assert any(isinstance(p, Figure) and p.name == "compact_weights" for p in sec.parts)


def test_mean_weights_by_group_and_top_share(tmp_path):
    log = write_log(tmp_path / "w.jsonl", ROWS)
    w = mean_weights(log, {"q1": "corrupted", "q2": "clean"})
    assert w["corrupted"] == pytest.approx({"a": 0.4, "b": 0.6})
    assert w["clean"] == pytest.approx({"a": 0.5, "b": 0.5})
    assert mean_weights(log, from_step=1)["all"] == pytest.approx({"a": 0.2, "b": 0.8})
    assert top_weight_share(log) == pytest.approx({"a": 0.5, "b": 0.5})
    assert top_weight_share(log, from_step=1) == pytest.approx({"a": 0.0, "b": 1.0})
    assert plot_weight_trajectory(log, tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_the_trajectory_is_smoothed_by_a_trailing_mean():
    # a step holds a few questions, so the report draws each step faint and a trailing mean bold
    assert moving_average([0.0, 1.0, 2.0, 3.0], 2) == pytest.approx([0.0, 0.5, 1.5, 2.5])
    assert moving_average([0.4, 0.6], 1) == [0.4, 0.6]
    assert moving_average([0.4, 0.6], 0) == [0.4, 0.6]
    assert moving_average([], 3) == []
