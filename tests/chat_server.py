"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

Each reply is a function of the request: ``ChatServer(reply=fn)`` where ``fn(req: ChatRequest) -> Reply``.
A ``Reply`` can delay, hang (until the client gives up or the server stops), return any status code with any
body (a dict, or raw text for malformed bodies) and headers (e.g. ``Retry-After``). Every request is recorded.

    with ChatServer(reply=lambda r: Reply(content="The answer is 4.")) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x")

The ``chat_server`` fixture gives a running server; a test sets ``chat_server.reply = fn`` to script it.
Use it with ``from chat_server import chat_server_fixture  # noqa: F401`` in the test module.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HANG_LIMIT_S = 30.0  # a hanging reply never outlives this (bounded, even if the test forgets to stop it)


@dataclass
class ChatRequest:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    index: int  # 0-based arrival order

    @property
    def messages(self) -> list[dict[str, Any]]:
        return (self.body or {}).get("messages", [])

    @property
    def user_text(self) -> str:
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


@dataclass
class Reply:
    """What to answer: a completion with ``content``, or any ``status`` / ``body`` / ``raw`` bytes."""

    content: str = "The answer is 42."
    status: int = 200
    body: dict[str, Any] | None = None  # a full JSON body instead of the default completion
    raw: str | None = None  # raw (e.g. malformed) body text, sent as application/json
    delay: float = 0.0
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens); default from word counts
    choices: list[str] | None = None  # one text per choice (default: ``content`` repeated, n times when asked)


def default_reply(req: ChatRequest) -> Reply:
    """A well-formed completion that restates the prompt's first line and answers 42."""
    first = req.user_text.strip().splitlines()[0] if req.user_text.strip() else ""
    return Reply(content=f"We read: {first}\nStep 1: think.\nThe answer is 42.")


def completion_body(req: ChatRequest, reply: Reply) -> dict[str, Any]:
    """The chat-completions JSON for ``reply.content``."""
    body = req.body or {}
    texts = reply.choices if reply.choices is not None else [reply.content] * int(body.get("n") or 1)
    prompt_tokens, completion_tokens = reply.usage or (
        sum(len(str(m.get("content", "")).split()) for m in req.messages),
        sum(len(t.split()) for t in texts),
    )
    return {
        "id": f"chatcmpl-{req.index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop", "logprobs": None}
            for i, t in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class ChatServer:
    """A threaded HTTP/1.1 server speaking ``POST /v1/chat/completions``; use as a context manager."""

    def __init__(self, reply: Callable[[ChatRequest], Reply] = default_reply, api_key: str | None = None):
        self.reply = reply
        self.api_key = api_key  # when set, other keys get 401 (proves the key was sent)
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- bookkeeping ------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms Nagle stalls

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:  # noqa: N802  (/v1/models, for clients that probe)
                self._send(200, json.dumps({"object": "list", "data": [{"id": "test-model"}]}).encode(), {})

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = None
                with server._lock:
                    req = ChatRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, 0)
                    req.index = len(server.requests)
                    server.requests.append(req)
                if server.api_key is not None and req.headers.get("authorization") != f"Bearer {server.api_key}":
                    err = {"error": {"message": "invalid api key", "type": "invalid_request_error"}}
                    self._send(401, json.dumps(err).encode(), {})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode(), {})
                    return
                reply = server.reply(req)
                if reply.hang:
                    server._stop.wait(HANG_LIMIT_S)
                    self.close_connection = True
                    return
                if reply.delay:
                    server._stop.wait(reply.delay)
                if reply.raw is not None:
                    payload = reply.raw.encode()
                elif reply.body is not None:
                    payload = json.dumps(reply.body).encode()
                elif reply.status != 200:
                    payload = json.dumps({"error": {"message": f"scripted {reply.status}", "type": "server"}}).encode()
                else:
                    payload = json.dumps(completion_body(req, reply)).encode()
                self._send(reply.status, payload, reply.headers)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases hanging and delayed handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(name="chat_server")
def chat_server_fixture() -> Any:
    """A running :class:`ChatServer` on 127.0.0.1 (script it with ``chat_server.reply = fn``)."""
    with ChatServer() as srv:
        yield srv
