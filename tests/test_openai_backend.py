"""The openai backend against a real HTTP chat-completions server on 127.0.0.1 with scripted faults."""

from __future__ import annotations

import threading

import pytest

from chat_server import (
    ChatRequest,
    ChatServer,
    Reply,
    chat_server_fixture,  # noqa: F401  (the chat_server fixture)
)
from cotdistill.config import TeacherConfig
from cotdistill.errors import ConfigError
from cotdistill.records import Question
from cotdistill.teachers import build_backend
from cotdistill.teachers.base import Completion, GenRequest
from cotdistill.teachers.openai_backend import OpenAIBackend


def _reqs(n: int) -> list[GenRequest]:
    out = []
    for i in range(n):
        q = Question(id=f"q{i}", task="math", question=f"What is {i} + 1?", gold=str(i + 1))
        out.append(
            GenRequest(
                key=f"q{i}|t|cot|0", question=q, style="cot", sample=0, messages=[{"role": "user", "content": f"Q{i}"}]
            )
        )
    return out


def _cfg(url: str, **kw) -> TeacherConfig:
    base = dict(name="t", backend="openai", model="m", base_url=url, retry_backoff_s=0.0, timeout_s=5.0)
    return TeacherConfig(**{**base, **kw})


def _run(backend: OpenAIBackend, reqs: list[GenRequest]) -> dict[str, Completion]:
    got: dict[str, Completion] = {}

    def on_result(r: GenRequest, c: Completion) -> None:
        assert r.key not in got, "on_result called twice for one request"
        got[r.key] = c

    backend.generate(reqs, on_result)
    return got


def test_plain_completions_carry_text_usage_and_settings(chat_server: ChatServer) -> None:
    chat_server.reply = lambda r: Reply(content=f"echo {r.user_text}. The answer is 1.", usage=(7, 3))
    backend = build_backend(_cfg(chat_server.base_url, temperature=0.3, max_tokens=99), seed=0)
    reqs = _reqs(5)
    got = _run(backend, reqs)
    assert {k: c.text for k, c in got.items()} == {r.key: f"echo {r.prompt}. The answer is 1." for r in reqs}
    assert all(c.usage == {"prompt_tokens": 7, "completion_tokens": 3} and c.retries == 0 for c in got.values())
    body = chat_server.requests[0].body
    assert body["model"] == "m" and body["temperature"] == 0.3 and body["max_tokens"] == 99 and "seed" in body
    assert chat_server.count == 5


def test_faults_are_retried_and_counted(chat_server: ChatServer) -> None:
    """429 (with Retry-After), 500, 503, malformed JSON, a JSON body with no choices and a hang: all recover."""
    faults = [
        Reply(status=429, headers={"Retry-After": "0"}),
        Reply(status=500),
        Reply(status=503),
        Reply(raw="{this is not json"),
        Reply(body={"id": "x", "object": "chat.completion", "choices": []}),
        Reply(hang=True),
    ]
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def fails(k: int) -> int:  # how many attempts of request k fail (a hang costs a whole timeout: only once)
        return 1 if k % 6 == 5 else k % 3 + 1

    def reply(r: ChatRequest) -> Reply:
        k = int(r.user_text[1:])
        with lock:
            seen[r.user_text] = seen.get(r.user_text, 0) + 1
            n = seen[r.user_text]
        return faults[k % 6] if n <= fails(k) else Reply(content=f"ok {k}. The answer is {k}.")

    chat_server.reply = reply
    # the timeout is generous so that only the scripted hangs (never a slow, loaded machine) time out
    backend = OpenAIBackend(_cfg(chat_server.base_url, timeout_s=1.0, concurrency=6, max_retries=4), seed=0)
    reqs = _reqs(18)
    got = _run(backend, reqs)
    expected_retries = sum(fails(k) for k in range(18))
    assert all(got[r.key].text == f"ok {k}. The answer is {k}." for k, r in enumerate(reqs))
    assert [got[r.key].retries for r in reqs] == [fails(k) for k in range(18)]
    assert backend.stats.retries == expected_retries
    assert backend.stats.attempts == chat_server.count == 18 + expected_retries
    assert backend.stats.failures == 0


def test_retries_exhausted_and_client_errors_fail_without_retry(chat_server: ChatServer) -> None:
    def reply(r: ChatRequest) -> Reply:
        if r.user_text == "Q0":
            return Reply(status=500)
        if r.user_text == "Q1":
            return Reply(status=400, body={"error": {"message": "bad model"}})
        return Reply()

    chat_server.reply = reply
    backend = OpenAIBackend(_cfg(chat_server.base_url, max_retries=2), seed=0)
    got = _run(backend, _reqs(3))
    assert got["q0|t|cot|0"].text is None and got["q0|t|cot|0"].retries == 2
    assert "500" in got["q0|t|cot|0"].error or "InternalServerError" in got["q0|t|cot|0"].error
    assert got["q1|t|cot|0"].text is None and got["q1|t|cot|0"].retries == 0  # 400 is not retried
    assert "bad model" in got["q1|t|cot|0"].error
    assert got["q2|t|cot|0"].text is not None
    assert chat_server.count == 3 + 2 and backend.stats.failures == 2


def test_concurrency_is_bounded(chat_server: ChatServer) -> None:
    live = {"now": 0, "max": 0}
    lock = threading.Lock()
    import time

    def reply(r: ChatRequest) -> Reply:
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(0.05)
        with lock:
            live["now"] -= 1
        return Reply()

    chat_server.reply = reply
    got = _run(OpenAIBackend(_cfg(chat_server.base_url, concurrency=4), seed=0), _reqs(16))
    assert len(got) == 16
    assert 2 <= live["max"] <= 4


def test_requests_per_minute_spaces_requests(chat_server: ChatServer) -> None:
    import time

    stamps: list[float] = []
    chat_server.reply = lambda r: (stamps.append(time.monotonic()), Reply())[1]
    _run(OpenAIBackend(_cfg(chat_server.base_url, concurrency=8, requests_per_minute=300), seed=0), _reqs(4))
    # 300/min: starts 0.2 s apart, so the last arrives >= 0.6 s after the first starts (unpaced: all at once)
    assert len(stamps) == 4 and max(stamps) - min(stamps) > 0.45


def test_api_key_comes_from_the_named_environment_variable(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.api_key = "k-" + "x" * 20
    monkeypatch.setenv("MY_TEST_KEY", chat_server.api_key)
    got = _run(OpenAIBackend(_cfg(chat_server.base_url, api_key_env="MY_TEST_KEY"), seed=0), _reqs(2))
    assert all(c.text for c in got.values())
    assert chat_server.requests[0].headers["authorization"] == f"Bearer {chat_server.api_key}"
    monkeypatch.delenv("MY_TEST_KEY")
    with pytest.raises(ConfigError, match="MY_TEST_KEY is not set"):
        OpenAIBackend(_cfg(chat_server.base_url, api_key_env="MY_TEST_KEY"), seed=0)


def test_connection_refused_is_retried_then_recorded() -> None:
    with ChatServer() as srv:
        url = srv.base_url
    backend = OpenAIBackend(_cfg(url, max_retries=2, timeout_s=1.0), seed=0)
    got = _run(backend, _reqs(1))
    c = got["q0|t|cot|0"]
    assert c.text is None and c.retries == 2 and "Connection" in c.error


def _sample_reqs(n_questions: int, samples: int) -> list[GenRequest]:
    out = []
    for i in range(n_questions):
        q = Question(id=f"q{i}", task="math", question=f"What is {i} + 1?", gold=str(i + 1))
        for k in range(samples):
            msgs = [{"role": "user", "content": f"Q{i}"}]
            out.append(GenRequest(key=f"q{i}|t|cot|{k}", question=q, style="cot", sample=k, messages=msgs, seed=k))
    return out


def test_n_per_request_asks_once_per_prompt(chat_server: ChatServer) -> None:
    chat_server.reply = lambda r: Reply(
        choices=[f"{r.user_text} c{j}" for j in range(r.body.get("n", 1))], usage=(10, 9)
    )
    backend = OpenAIBackend(_cfg(chat_server.base_url, n_per_request=True), seed=0)
    got = _run(backend, _sample_reqs(4, 3))
    assert chat_server.count == 4 and all(r.body["n"] == 3 for r in chat_server.requests)
    assert {k: c.text for k, c in got.items()} == {f"q{i}|t|cot|{k}": f"Q{i} c{k}" for i in range(4) for k in range(3)}
    # the prompt is paid once per request; completion tokens are shared out without loss
    assert sum(c.usage["prompt_tokens"] for c in got.values()) == 4 * 10
    assert sum(c.usage["completion_tokens"] for c in got.values()) == 4 * 9


def test_n_per_request_with_a_server_that_ignores_n(chat_server: ChatServer) -> None:
    chat_server.reply = lambda r: Reply(choices=[f"{r.user_text} seed {r.body['seed']}"])
    backend = OpenAIBackend(_cfg(chat_server.base_url, n_per_request=True), seed=0)
    got = _run(backend, _sample_reqs(2, 3))
    assert len(got) == 6 and all(c.text for c in got.values())
    assert chat_server.count == 6  # the rest was asked for again, one choice at a time
    assert len({c.text for c in got.values()}) == 6  # each re-ask carries the next sample's own seed
