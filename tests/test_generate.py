"""The generate stage end to end: a real HTTP server, resume, request cache, failures, SIGKILL, SIGINT, secrets."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from chat_server import (
    ChatRequest,
    ChatServer,
    Reply,
    chat_server_fixture,  # noqa: F401  (the chat_server fixture)
)
from conftest import REPO, run_cli
from cotdistill.config import RunConfig
from cotdistill.io import atomic_write_jsonl
from cotdistill.records import Question, path_id, read_paths
from cotdistill.rundir import RunDir
from cotdistill.stages.generate import run_generate
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend


def make_run(root: Path, n: int = 5) -> RunDir:
    """A run directory with ``n`` train questions (and two test questions that generate must skip)."""
    qs = [Question(id=f"q{i}", task="math", question=f"What is {i} plus {i}?", gold=str(2 * i)) for i in range(n)]
    qs += [Question(id=f"t{i}", task="math", question="What is 1 plus 1?", gold="2", split="test") for i in range(2)]
    atomic_write_jsonl(root / "questions.jsonl", qs)
    return RunDir.at(root)


def answer_reply(r: ChatRequest) -> Reply:
    """A teacher that answers each 'What is i plus i?' correctly."""
    i = int(r.user_text.split("What is ")[1].split(" ")[0])
    return Reply(content=f"Step 1: {i} + {i} = {2 * i}.\nThe answer is {2 * i}.", usage=(20, 10))


def teacher(name: str, url: str, **kw) -> dict:
    return {"name": name, "backend": "openai", "model": f"model-{name}", "base_url": url, "retry_backoff_s": 0, **kw}


def config(url: str, styles: Sequence[str] = ("cot", "program"), samples: int = 2, **kw) -> dict:
    return {
        "teachers": [teacher("a", url, **kw), teacher("b", url, **kw)],
        "generate": {"styles": list(styles), "samples": samples},
    }


def lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def expected_ids(n: int, teachers=("a", "b"), styles=("cot", "program"), samples: int = 2) -> set[str]:
    return {path_id(f"q{i}", t, s, k) for i in range(n) for t in teachers for s in styles for k in range(samples)}


def test_generate_writes_every_path_and_never_resends(tmp_path: Path, chat_server: ChatServer) -> None:
    chat_server.reply = answer_reply
    run = make_run(tmp_path)
    cfg = RunConfig.model_validate(config(chat_server.base_url))
    assert not run.paths.exists()
    s = run_generate(run, cfg)
    assert s.teachers["a"].planned == 20 and s.teachers["b"].planned == 20
    paths = list(read_paths(run.paths))
    assert {p.id for p in paths} == expected_ids(5) and len(paths) == 40
    assert chat_server.count == 40
    assert all(p.answer == str(2 * int(p.question_id[1:])) for p in paths)  # extracted by the task family
    p0 = next(p for p in paths if p.id == "q1|a|program|1")
    assert p0.teacher == "a" and p0.style == "program" and p0.sample == 1
    assert p0.prompt.startswith("What is 1 plus 1?") and "python" in p0.prompt.lower()
    assert p0.metadata["usage"] == {"prompt_tokens": 20, "completion_tokens": 10}
    assert s.teachers["a"].completed == 20 and s.teachers["a"].completion_tokens == 200
    models = {r.body["model"] for r in chat_server.requests}
    assert models == {"model-a", "model-b"}
    seeds = {(r.body["model"], r.body["seed"]) for r in chat_server.requests}
    assert len(seeds) == 40  # every request has its own seed

    # a re-run: everything is already there, nothing is sent
    s2 = run_generate(run, cfg)
    assert chat_server.count == 40 and len(lines(run.paths)) == 40
    assert s2.teachers["b"].existing == 20 and s2.teachers["b"].completed == 0

    # paths lost but the request cache kept: rebuilt from the cache, still nothing sent
    before = {p.id: p.text for p in paths}
    run.paths.unlink()
    s3 = run_generate(run, cfg)
    assert chat_server.count == 40
    after = list(read_paths(run.paths))
    assert {p.id: p.text for p in after} == before and all(p.metadata["cached"] for p in after)
    assert s3.teachers["a"].cached == 20

    # a changed setting is a different request: sent again (only for the teacher that changed)
    run.paths.unlink()
    cfg.teachers[0].temperature = 0.1
    run_generate(run, cfg)
    assert chat_server.count == 60


def test_failed_requests_are_logged_not_written_and_retried_next_run(tmp_path: Path, chat_server: ChatServer) -> None:
    broken = {"on": True}

    def reply(r: ChatRequest) -> Reply:
        if broken["on"] and r.user_text.startswith("What is 2 plus"):
            return Reply(status=500)
        return answer_reply(r)

    chat_server.reply = reply
    run = make_run(tmp_path)
    cfg = RunConfig.model_validate(config(chat_server.base_url, max_retries=1))
    s = run_generate(run, cfg)
    failures = lines(run.logs / "generate_failures.jsonl")
    assert s.failed == 8 and len(failures) == 8
    assert {f["path_id"] for f in failures} == {i for i in expected_ids(5) if i.startswith("q2|")}
    assert all(f["retries"] == 1 and "500" in f["error"] for f in failures)
    assert len(lines(run.paths)) == 32 and not any(p["question_id"] == "q2" for p in lines(run.paths))
    assert chat_server.count == 32 + 8 * 2

    broken["on"] = False
    chat_server.reset()
    s2 = run_generate(run, cfg)
    assert chat_server.count == 8 and s2.failed == 0
    ids = [p["id"] for p in lines(run.paths)]
    assert sorted(ids) == sorted(expected_ids(5))


class InterruptingBackend(TeacherBackend):
    """Completes ``n`` requests, then behaves like Ctrl-C."""

    def __init__(self, n: int):
        self.n = n

    def generate(self, requests: Sequence[GenRequest], on_result: OnResult) -> None:
        for r in requests[: self.n]:
            on_result(r, Completion(text=f"The answer is {r.question.gold}."))
        raise KeyboardInterrupt


def test_ctrl_c_keeps_finished_work(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    cfg = RunConfig.model_validate(config("http://127.0.0.1:9/v1"))
    with pytest.raises(KeyboardInterrupt):
        run_generate(run, cfg, backends={"a": InterruptingBackend(7)})
    assert len(list(read_paths(run.paths))) == 7
    done = {p.id for p in read_paths(run.paths)}

    class Rest(TeacherBackend):
        def generate(self, requests, on_result):
            assert not {r.key for r in requests} & done  # finished work is never requested again
            for r in requests:
                on_result(r, Completion(text="The answer is 0."))

    run_generate(run, cfg, backends={"a": Rest(), "b": Rest()})
    assert sorted(p.id for p in read_paths(run.paths)) == sorted(expected_ids(5))


def _write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", **extra}


def _wait_for_lines(p: Path, n: int, proc: subprocess.Popen) -> None:
    for _ in range(6000):  # bounded poll (sleeps 10 ms)
        if p.exists() and p.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"generate exited early: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError(f"{p} never reached {n} lines")


def _wait_until_quiet(server: ChatServer) -> None:
    last, still = -1, 0
    for _ in range(500):  # bounded: until the count is unchanged for 10 polls of 20 ms
        n = server.count
        still = still + 1 if n == last else 0
        if still >= 10:
            return
        last = n
        time.sleep(0.02)


def test_sigkill_mid_run_then_resume_gives_every_path_exactly_once(tmp_path: Path, chat_server: ChatServer) -> None:
    chat_server.reply = lambda r: Reply(content=answer_reply(r).content, delay=0.03)
    run = make_run(tmp_path / "run", n=12)
    cfg = _write_config(tmp_path / "c.yaml", config(chat_server.base_url, concurrency=3))
    args = [sys.executable, "-m", "cotdistill.cli", "generate", str(run.root), "-c", str(cfg)]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_lines(run.paths, 20, proc)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _wait_until_quiet(chat_server)  # requests the dead client sent must be counted before the reset below
    killed_at = chat_server.count
    cache_entries = (
        len({o["key"] for o in lines(run.cache / "generate.jsonl")}) if (run.cache / "generate.jsonl").exists() else 0
    )
    assert 20 <= cache_entries < 96
    chat_server.reset()

    r = run_cli("generate", str(run.root))  # resumes with the saved RUN/config.yaml
    assert r.returncode == 0, r.stderr
    raw = run.paths.read_text()
    assert raw.endswith("\n")
    recs = [json.loads(x) for x in raw.splitlines()]  # every line parses
    ids = [x["id"] for x in recs]
    assert len(ids) == len(set(ids)) == 96 and set(ids) == expected_ids(12)
    assert len(list(read_paths(run.paths))) == 96
    # only unfinished work was sent again: everything cached before the kill was reused
    assert chat_server.count == 96 - cache_entries, (killed_at, cache_entries)


def test_sigint_stops_cleanly(tmp_path: Path, chat_server: ChatServer) -> None:
    chat_server.reply = lambda r: Reply(content="The answer is 1.", delay=0.05)
    run = make_run(tmp_path / "run", n=12)
    cfg = _write_config(tmp_path / "c.yaml", config(chat_server.base_url, concurrency=2))
    args = [sys.executable, "-m", "cotdistill.cli", "generate", str(run.root), "-c", str(cfg)]
    # a shell's background job (`make test &`, nohup) starts with SIGINT ignored, and Python keeps an inherited
    # SIG_IGN, so the child would never see Ctrl-C: give it the default disposition, as a terminal would
    proc = subprocess.Popen(
        args,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for_lines(run.paths, 6, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    recs = lines(run.paths)
    assert 6 <= len(recs) < 96 and len({x["id"] for x in recs}) == len(recs)


def test_api_key_is_never_written_or_printed(tmp_path: Path) -> None:
    key = "sk-" + secrets.token_hex(20)  # made at run time: not even this test's source holds it
    lock = threading.Lock()
    seen: set[str] = set()

    def reply(r: ChatRequest) -> Reply:
        with lock:
            first = r.user_text not in seen
            seen.add(r.user_text)
        if r.user_text.startswith("What is 1 plus"):  # a hostile server that echoes the credentials
            return Reply(status=400, body={"error": {"message": f"bad request, auth={r.headers['authorization']}"}})
        if first and r.user_text.startswith("What is 3 plus"):
            return Reply(status=503)
        return answer_reply(r)

    with ChatServer(reply=reply, api_key=key) as srv:
        run = make_run(tmp_path / "run")
        data = config(srv.base_url, api_key_env="COTD_TEST_KEY")
        cfg = _write_config(tmp_path / "c.yaml", data)
        r = run_cli("generate", str(run.root), "-c", str(cfg), env={"COTD_TEST_KEY": key})
        assert r.returncode == 0, r.stderr
        assert srv.count > 40  # requests were sent with the key (the server rejects any other)
    assert len(lines(run.paths)) == 32
    failures = lines(run.logs / "generate_failures.jsonl")
    assert len(failures) == 8 and all("[redacted]" in f["error"] for f in failures)
    assert "COTD_TEST_KEY" in run.config.read_text()
    assert key not in r.stdout and key not in r.stderr
    leaked = [
        p
        for root in (run.root, REPO / "tests")
        for p in root.rglob("*")
        if p.is_file() and key.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_config_and_input_errors_are_one_line(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    r = run_cli("generate", str(run.root))
    assert r.returncode == 2 and "no teachers configured" in r.stderr and "Traceback" not in r.stderr
    bad = _write_config(tmp_path / "bad.yaml", {**config("http://127.0.0.1:9/v1"), "generate": {"styles": ["zen"]}})
    r = run_cli("generate", str(run.root), "-c", str(bad))
    assert r.returncode == 2 and "unknown style" in r.stderr and "zen" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("generate", str(empty), "-c", str(_write_config(tmp_path / "ok.yaml", config("http://x/v1"))))
    assert r.returncode == 2 and "questions.jsonl" in r.stderr
    cfg = _write_config(tmp_path / "k.yaml", config("http://127.0.0.1:9/v1", api_key_env="COTD_UNSET_VAR"))
    r = run_cli("generate", str(run.root), "-c", str(cfg))
    assert r.returncode == 2 and "COTD_UNSET_VAR is not set" in r.stderr


def test_synthetic_backend_is_imported_lazily_with_a_clear_error() -> None:
    import importlib.util

    from cotdistill.config import TeacherConfig
    from cotdistill.errors import CotdistillError
    from cotdistill.teachers import build_backend

    try:
        present = importlib.util.find_spec("cotdistill.lab.synthetic") is not None
    except ModuleNotFoundError:
        present = False
    if present:
        b = build_backend(TeacherConfig(name="s", backend="synthetic"), seed=0)
        assert isinstance(b, TeacherBackend)
    else:
        with pytest.raises(CotdistillError, match="cotdistill.lab.synthetic"):
            build_backend(TeacherConfig(name="s", backend="synthetic"), seed=0)


def test_backend_works_inside_a_running_event_loop(tmp_path: Path, chat_server: ChatServer) -> None:
    """As in a notebook: generate() is called while an asyncio loop is running on this thread."""
    import asyncio

    from cotdistill.teachers import build_backend

    chat_server.reply = answer_reply
    run = make_run(tmp_path, n=2)
    cfg = RunConfig.model_validate(config(chat_server.base_url, styles=["cot"], samples=1))

    async def main() -> None:
        run_generate(run, cfg, backends={t.name: build_backend(t, 0) for t in cfg.teachers})

    asyncio.run(main())
    assert sorted(p.id for p in read_paths(run.paths)) == sorted(expected_ids(2, styles=("cot",), samples=1))


def test_a_missing_key_fails_before_any_teacher_starts(tmp_path: Path, chat_server: ChatServer, monkeypatch) -> None:
    from cotdistill.errors import ConfigError

    monkeypatch.delenv("COTD_UNSET_VAR", raising=False)
    run = make_run(tmp_path)
    data = config(chat_server.base_url)
    data["teachers"][1]["api_key_env"] = "COTD_UNSET_VAR"
    with pytest.raises(ConfigError, match="teacher 'b'.*COTD_UNSET_VAR is not set"):
        run_generate(run, RunConfig.model_validate(data))
    assert chat_server.count == 0 and not run.paths.exists()


def test_a_backend_reporting_twice_never_duplicates_a_path(tmp_path: Path) -> None:
    class Stutter(TeacherBackend):
        def generate(self, requests, on_result):
            for r in requests:
                on_result(r, Completion(text="The answer is 1."))
                on_result(r, Completion(text="The answer is 2."))

    run = make_run(tmp_path, n=2)
    cfg = RunConfig.model_validate(config("http://127.0.0.1:9/v1"))
    run_generate(run, cfg, backends={"a": Stutter(), "b": Stutter()})
    recs = lines(run.paths)
    assert sorted(x["id"] for x in recs) == sorted(expected_ids(2)) and {x["answer"] for x in recs} == {"1"}


def test_generate_on_real_imported_svamp_keeps_imported_paths(
    tmp_path: Path, svamp_json: Path, chat_server: ChatServer
) -> None:
    """Real questions (SVAMP, imported with its 10 paths each): new teacher paths are appended after them."""
    run = RunDir.at(tmp_path / "svamp")
    r = run_cli("import", "mcc-kd", str(svamp_json), "--out", str(run.root))
    assert r.returncode == 0, r.stderr
    imported = run.paths.read_text()
    chat_server.reply = lambda req: Reply(content="Step 1: compute.\nThe answer is 7.")
    cfg = RunConfig.model_validate(
        {
            "teachers": [teacher("t", chat_server.base_url, concurrency=32)],
            "generate": {"styles": ["backward"]},
        }
    )
    s = run_generate(run, cfg)
    nq = sum(1 for _ in run.questions.read_text().splitlines())
    assert s.teachers["t"].completed == nq == chat_server.count
    text = run.paths.read_text()
    assert text.startswith(imported)  # the imported paths are untouched
    new = [json.loads(x) for x in text[len(imported) :].splitlines()]
    assert len(new) == nq and all(p["teacher"] == "t" and p["answer"] == "7" for p in new)
    assert all("verify" in p["prompt"] and p["prompt"].count("The answer is N.") == 1 for p in new)


class _TimedWrites:
    """A console file that records when each write happened (what a user's terminal would be shown)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.chunks: list[str] = []

    def write(self, s: str) -> int:
        self.times.append(time.perf_counter())
        self.chunks.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_a_slow_server_never_blocks_progress_reporting(tmp_path: Path, chat_server: ChatServer) -> None:
    """Every request takes 2 s: the progress display keeps redrawing (elapsed time, rate) while all of them are in
    flight, long before the first answer arrives, and ends showing every path done."""
    from rich.console import Console

    first_answer: list[float] = []

    def slow(r: ChatRequest) -> Reply:
        time.sleep(2.0)
        first_answer.append(time.perf_counter())
        return answer_reply(r)

    chat_server.reply = slow
    run = make_run(tmp_path, n=2)
    cfg = RunConfig.model_validate(config(chat_server.base_url, styles=("cot",), samples=1, concurrency=4))
    out = _TimedWrites()
    start = time.perf_counter()
    s = run_generate(run, cfg, console=Console(file=out, force_terminal=True, width=160))  # type: ignore[arg-type]
    assert s.teachers["a"].completed == 2 and s.teachers["b"].completed == 2
    redraws_while_waiting = [t for t in out.times if start < t < min(first_answer)]
    assert len(redraws_while_waiting) >= 5  # rich redraws ~10/s from its own thread; 2 s of waiting
    assert "2/2" in "".join(out.chunks)
