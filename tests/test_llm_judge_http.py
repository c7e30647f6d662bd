"""The llm judge for real: `cotdistill filter` with `judge.kind: llm` against a chat server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from chat_server import ChatRequest, ChatServer, Reply, chat_server_fixture  # noqa: F401
from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import Question, path_id
from cotdistill.records import ReasoningPath as PathRec
from cotdistill.rundir import RunDir
from cotdistill.stages.filter import filter_run


def test_filter_with_an_llm_judge_over_http(tmp_path: Path, chat_server: ChatServer) -> None:
    run = RunDir.at(tmp_path)
    qs = [Question(id=f"q{i}", task="math", question=f"What is {i} plus {i}?", gold=str(2 * i)) for i in range(4)]
    atomic_write_jsonl(run.questions, qs)
    paths = []
    for q in qs:
        i = int(q.id[1:])
        for k, step in enumerate([f"{i} + {i} = {2 * i}", f"{i} doubled is {2 * i}", "it is obvious"]):
            paths.append(
                PathRec(
                    id=path_id(q.id, "t", "cot", k),
                    question_id=q.id,
                    teacher="t",
                    style="cot",
                    sample=k,
                    text=f"{step}. The answer is {2 * i}.",
                    answer=str(2 * i),
                )
            )
    atomic_write_jsonl(run.paths, paths)

    def judge(r: ChatRequest) -> Reply:
        text = r.user_text
        if "it is obvious" in text:
            return Reply(content="Verdict: INVALID - the path gives no reasoning at all.")
        if "doubled" in text:
            return Reply(content="hmm, hard to say")  # unparseable: rejected by default
        return Reply(content="valid.")

    chat_server.reply = judge
    cfg = RunConfig.model_validate(
        {
            "teachers": [{"name": "judge", "backend": "openai", "model": "m", "base_url": chat_server.base_url}],
            "filter": {"judge": {"kind": "llm", "teacher": "judge"}, "consensus": {"enabled": False}},
        }
    )
    stats = filter_run(run, cfg)
    rows = [json.loads(x) for x in run.filtered.read_text().splitlines()]
    by_kind = {r["text"].split(" ")[1]: r["checks"] for r in rows if r["question_id"] == "q3"}
    assert by_kind["+"]["kept"] is True
    assert by_kind["is"]["reject_reason"] == "judge_invalid"
    assert "no reasoning" in by_kind["is"]["judge_reason"]
    assert by_kind["doubled"]["reject_reason"] == "judge_unparseable"
    assert stats["kept"] == 4 and stats["total"] == 12
    assert len(chat_server.requests) == 12
    # judged verdicts are cached: a second filter sends nothing
    filter_run(run, cfg)
    assert len(chat_server.requests) == 12
    for r in chat_server.requests:
        assert r.body["temperature"] == 0
