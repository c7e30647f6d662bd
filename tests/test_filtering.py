"""The filter stage end to end: files and statistics contracts, streaming over unordered paths, switches, errors."""

from __future__ import annotations

import json
import random
from pathlib import Path as FsPath

import pytest

from conftest import run_cli
from cotdistill.config import load_config
from cotdistill.quality.judges import Verdict
from cotdistill.quality.path_index import index_paths
from cotdistill.rundir import RunDir
from cotdistill.stages.filter import filter_run, read_kept

CHECK_KEYS = {"answer", "answer_ok", "judge", "judge_reason", "consensus", "kept", "reject_reason"}


def _svamp_run(svamp_json: FsPath, out: FsPath, n_questions: int = 20, shuffle: bool = False) -> FsPath:
    """A run with the first ``n_questions`` real SVAMP questions and their 10 paths each."""
    full = out.parent / (out.name + "-full")
    r = run_cli("import", "mcc-kd", str(svamp_json), "--out", str(full))
    assert r.returncode == 0, r.stderr
    out.mkdir(parents=True, exist_ok=True)
    qlines = (full / "questions.jsonl").read_text().splitlines()[:n_questions]
    keep = {json.loads(q)["id"] for q in qlines}
    plines = [ln for ln in (full / "paths.jsonl").read_text().splitlines() if json.loads(ln)["question_id"] in keep]
    if shuffle:
        random.Random(0).shuffle(plines)
    (out / "questions.jsonl").write_text("\n".join(qlines) + "\n")
    (out / "paths.jsonl").write_text("\n".join(plines) + "\n")
    return out


def _read(path: FsPath) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_cli_filter_on_real_paths_writes_the_contract(svamp_json, tmp_path, tiny_encoder) -> None:
    run = _svamp_run(svamp_json, tmp_path / "run", n_questions=20)
    r = run_cli("filter", str(run), "--set", f"filter.consensus.encoder={tiny_encoder}")
    assert r.returncode == 0, r.stderr
    assert "kept by teacher" in r.stdout and "dropped by reason" in r.stdout
    rows = _read(run / "filtered.jsonl")
    assert len(rows) == 200  # every path, kept or not
    for row in rows:
        c = row["checks"]
        assert CHECK_KEYS <= set(c)
        expect_kept = c["answer_ok"] and c["judge"] == "valid"
        assert c["kept"] == expect_kept
        assert (c["reject_reason"] is None) == c["kept"]
        assert 0.0 <= c["consensus"] <= 1.0
        if not c["answer_ok"]:
            assert c["consensus"] == 0.0 and c["reject_reason"] in ("wrong_answer", "no_answer")
        if c["judge"] == "invalid":
            assert "false calculation" in c["judge_reason"]
    stats = json.loads((run / "filter_stats.json").read_text())
    assert stats["total"] == 200 and stats["kept"] == sum(r["checks"]["kept"] for r in rows)
    assert stats["by_teacher"] == {"teacher": {"total": 200, "kept": stats["kept"]}}
    assert stats["by_style"]["cot"]["total"] == 200
    assert sum(stats["by_reason"].values()) == stats["total"] - stats["kept"]
    assert 0 < stats["kept"] < 200
    # questions with no kept path are listed (SVAMP train-1: every teacher path is wrong)
    empty = {r["question_id"] for r in rows} - {r["question_id"] for r in rows if r["checks"]["kept"]}
    assert stats["questions_without_kept"] == len(empty) and set(stats["questions_without_kept_ids"]) == empty
    assert "train-1" in empty and "no kept path" in r.stdout
    assert [p.id for p in read_kept(RunDir.at(run))] == [r["id"] for r in rows if r["checks"]["kept"]]


def test_unordered_paths_give_the_same_verdicts(svamp_json, tmp_path, tiny_encoder) -> None:
    grouped = _svamp_run(svamp_json, tmp_path / "g", n_questions=12)
    shuffled = _svamp_run(svamp_json, tmp_path / "s", n_questions=12, shuffle=True)
    assert (grouped / "paths.jsonl").read_text() != (shuffled / "paths.jsonl").read_text()
    results = []
    for run in (grouped, shuffled):
        cfg = load_config(None, [f"filter.consensus.encoder={tiny_encoder}", "filter.batch_paths=25"])
        filter_run(RunDir.at(run), cfg)
        results.append({r["id"]: r["checks"] for r in _read(run / "filtered.jsonl")})
        # grouped by question in the output, whatever the input order
        qids = [r["question_id"] for r in _read(run / "filtered.jsonl")]
        assert all(qids.index(q) == i or qids[i - 1] == q for i, q in enumerate(qids))
    assert results[0] == results[1]
    idx = index_paths(shuffled / "paths.jsonl")
    assert idx.total == 120 and all(len(idx.paths_of(i)) == 10 for i in range(len(idx.qids)))


def test_everything_off_keeps_every_path(svamp_json, tmp_path) -> None:
    run = _svamp_run(svamp_json, tmp_path / "run", n_questions=10)
    cfg = load_config(None, ["filter.answer_check=false", "filter.judge.kind=none", "filter.consensus.enabled=false"])
    stats = filter_run(RunDir.at(run), cfg)
    assert stats["kept"] == stats["total"] == 100 and stats["by_reason"] == {}
    rows = _read(run / "filtered.jsonl")
    assert all(r["checks"]["judge"] is None and r["checks"]["consensus"] is None for r in rows)
    # the master switch: checks are recorded, nothing is dropped
    cfg = load_config(None, ["filter.enabled=false", "filter.consensus.enabled=false"])
    stats = filter_run(RunDir.at(run), cfg)
    rows = _read(run / "filtered.jsonl")
    assert stats["kept"] == 100 and any(not r["checks"]["answer_ok"] for r in rows)
    assert all(r["checks"]["judge"] in ("valid", "invalid") for r in rows)  # the arithmetic judge still ran
    assert all(r["checks"]["kept"] and r["checks"]["reject_reason"] is None for r in rows)


class ScriptedJudge:
    """An in-process llm-like judge: verdicts by path sample index; records what it was asked."""

    name = "llm"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def judge(self, items):
        out = []
        for _, p in items:
            self.asked.append(p.id)
            out.append(
                [Verdict("valid"), Verdict("invalid", "step 2 is wrong"), Verdict("unparseable", "hmm")][p.sample % 3]
            )
        return out


@pytest.mark.parametrize("policy", ["reject", "accept"])
def test_llm_judge_policy_and_two_stage_order(svamp_json, tmp_path, policy: str) -> None:
    run = _svamp_run(svamp_json, tmp_path / "run", n_questions=10)
    cfg = load_config(None, ["filter.consensus.enabled=false", f"filter.judge.unparseable={policy}"])
    judge = ScriptedJudge()
    stats = filter_run(RunDir.at(run), cfg, judge=judge)
    rows = _read(run / "filtered.jsonl")
    ok = [r for r in rows if r["checks"]["answer_ok"]]
    assert sorted(judge.asked) == sorted(r["id"] for r in ok)  # stage 2 sees only stage-1 survivors
    for r in rows:
        c = r["checks"]
        if not c["answer_ok"]:
            assert c["judge"] is None and not c["kept"]
        elif c["judge"] == "invalid":
            assert c["reject_reason"] == "judge_invalid" and c["judge_reason"] == "step 2 is wrong"
        elif c["judge"] == "unparseable":
            assert c["kept"] == (policy == "accept")
            assert c["reject_reason"] == (None if policy == "accept" else "judge_unparseable")
        else:
            assert c["kept"]
    assert stats["judge_verdicts"]["invalid"] == sum(r["checks"]["judge"] == "invalid" for r in rows)


def test_unknown_question_and_bad_input(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    q = {"id": "q1", "task": "math", "question": "1+1?", "gold": "2"}
    (run / "questions.jsonl").write_text(json.dumps(q) + "\n")
    paths = [
        {
            "id": "q1|t|cot|0",
            "question_id": "q1",
            "teacher": "t",
            "style": "cot",
            "text": "1 + 1 = 2. The answer is 2.",
        },
        {"id": "q9|t|cot|0", "question_id": "q9", "teacher": "t", "style": "cot", "text": "The answer is 2."},
    ]
    (run / "paths.jsonl").write_text("".join(json.dumps(p) + "\n" for p in paths))
    r = run_cli("filter", str(run), "--set", "filter.consensus.enabled=false", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["kept"] == 1 and stats["by_reason"] == {"unknown_question": 1}
    (run / "paths.jsonl").write_text(json.dumps(paths[0]) + "\n{not json\n")
    r = run_cli("filter", str(run))
    assert r.returncode == 2 and "paths.jsonl:2" in r.stderr and "Traceback" not in r.stderr
    (run / "paths.jsonl").write_text(json.dumps({**paths[0], "teacher": ""}) + "\n")
    r = run_cli("filter", str(run))
    assert r.returncode == 2 and "field 'teacher'" in r.stderr


def test_llm_judge_without_backends_is_a_clear_error(tmp_path) -> None:
    import cotdistill.teachers as teachers

    if hasattr(teachers, "build_backend"):
        pytest.skip("teacher backends are installed; the llm judge is tested against them elsewhere")
    run = tmp_path / "run"
    run.mkdir()
    (run / "questions.jsonl").write_text(json.dumps({"id": "q", "task": "math", "question": "?", "gold": "1"}) + "\n")
    p = {"id": "q|t|cot|0", "question_id": "q", "teacher": "t", "style": "cot", "text": "The answer is 1."}
    (run / "paths.jsonl").write_text(json.dumps(p) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "teachers: [{name: judge, backend: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "filter: {judge: {kind: llm, teacher: judge}, consensus: {enabled: false}}\n"
    )
    r = run_cli("filter", str(run), "-c", str(cfg))
    assert r.returncode == 2 and "build_backend" in r.stderr


def test_duplicate_path_ids_first_one_wins(svamp_json, tmp_path) -> None:
    """A path id seen again (a re-appended line, or the same id under another question) is skipped and counted."""
    run = _svamp_run(svamp_json, tmp_path / "run", n_questions=4)
    lines = (run / "paths.jsonl").read_text().splitlines()
    first, other = json.loads(lines[0]), json.loads(lines[-1])
    assert first["question_id"] != other["question_id"]
    moved = {**other, "id": first["id"], "text": "a different text under the same id"}
    (run / "paths.jsonl").write_text("\n".join([*lines, lines[0], json.dumps(moved), lines[3]]) + "\n")
    idx = index_paths(run / "paths.jsonl")
    assert idx.total == 40 and idx.duplicates == 3
    assert sorted(len(idx.paths_of(i)) for i in range(len(idx.qids))) == [10, 10, 10, 10]
    cfg = load_config(None, ["filter.consensus.enabled=false"])
    stats = filter_run(RunDir.at(run), cfg)
    rows = _read(run / "filtered.jsonl")
    assert stats["duplicate_paths_skipped"] == 3 and stats["total"] == 40
    assert len({r["id"] for r in rows}) == len(rows) == 40
    assert next(r for r in rows if r["id"] == first["id"])["text"] == first["text"]


@pytest.mark.parametrize("big_offsets", [False, True])
def test_grouping_by_question_keeps_file_order_within_a_question(big_offsets: bool) -> None:
    """The packed-key sort and its argsort fallback (offsets past 2**40) both group stably by question."""
    import numpy as np

    from cotdistill.quality.path_index import _group_by_question

    rng = np.random.default_rng(0)
    q = rng.integers(0, 50, size=2000).astype(np.int32)
    o = np.cumsum(rng.integers(1, 300, size=2000)).astype(np.int64) + ((1 << 41) if big_offsets else 0)
    want = o[np.argsort(q, kind="stable")]
    got = _group_by_question(q, o)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, o)  # the input was not already grouped
