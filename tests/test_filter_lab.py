"""The filter on the built-in lab's synthetic paths (runs once the lab is merged; skipped before).

Acceptance: every injected wrong-answer and spurious-step fault is caught (recall 100% on `arith`, and on the
other lab tasks too), and fewer than 1% of fault-free paths are rejected. Faults are read from metadata only
here, to score the filter; the filter itself never reads them.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cotdistill.config import load_config
from cotdistill.rundir import RunDir
from cotdistill.stages.filter import filter_run
from cotdistill.stages.questions import write_questions

runner = pytest.importorskip("cotdistill.lab.runner", reason="the reasoning lab is not merged yet")


def _fault_kinds(meta: dict) -> set[str]:
    out = set()
    for f in meta.get("faults") or []:
        out.add(f.get("kind", f.get("type", str(f))) if isinstance(f, dict) else str(f))
    return out


@pytest.mark.parametrize("judge", ["arithmetic", "synthetic"])
def test_lab_faults_caught_and_clean_paths_kept(tmp_path, judge: str) -> None:
    cfg = load_config(None, ["questions.source=lab:arith,date,compare", "questions.train=150"])
    cfg.questions = cfg.questions.model_copy(update={"dev": 0, "test": 0})
    write_questions(RunDir.at(tmp_path), cfg)
    runner.write_lab_paths(tmp_path, seed=0)
    fcfg = load_config(None, ["filter.consensus.enabled=false", f"filter.judge.kind={judge}"])
    filter_run(RunDir.at(tmp_path), fcfg)
    tasks = {json.loads(x)["id"]: json.loads(x)["task"] for x in (tmp_path / "questions.jsonl").open()}
    seen, rejected = Counter(), Counter()
    for line in (tmp_path / "filtered.jsonl").open():
        p = json.loads(line)
        kinds = _fault_kinds(p["metadata"]) or {"clean"}
        for k in kinds:
            key = (tasks[p["question_id"]], k)
            seen[key] += 1
            rejected[key] += int(not p["checks"]["kept"])
    for task in ("math", "choice", "yesno"):  # arith, date, compare
        for fault in ("wrong_answer", "spurious"):
            if seen[(task, fault)]:
                assert rejected[(task, fault)] == seen[(task, fault)], (task, fault)
        assert seen[(task, "clean")] > 100
        assert rejected[(task, "clean")] < 0.01 * seen[(task, "clean")], task
    assert seen[("math", "spurious")] > 10 and seen[("math", "wrong_answer")] > 10
