"""Any OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, Ollama, hosted APIs) as a teacher.

Async with a bounded pool of workers, an optional requests-per-minute limit, our own retries (exponential
backoff with jitter, Retry-After honoured) on 429 / 5xx / timeouts / connection errors / malformed bodies, and a
per-request timeout. The client's own retries are off so every retry is counted here. The API key is read from
the environment variable named by ``api_key_env`` and lives only in memory: error texts are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from cotdistill.config import TeacherConfig
from cotdistill.errors import ConfigError
from cotdistill.teachers.base import Completion, GenRequest, OnResult, TeacherBackend

RETRY_STATUS = {408, 409, 425, 429}
MAX_BACKOFF_S = 60.0


class MalformedResponse(Exception):
    """A 2xx reply that is not a usable chat completion (no choices, no message text)."""


def resolve_api_key(cfg: TeacherConfig) -> str:
    """The key from the environment variable ``cfg.api_key_env`` (default OPENAI_API_KEY, else none).

    Local servers (vLLM, Ollama) take any key, so an unset default variable gives a placeholder.
    """
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ConfigError(
                f"teacher '{cfg.name}': environment variable {cfg.api_key_env} is not set (it must hold the API key)"
            )
        return key
    return os.environ.get("OPENAI_API_KEY") or "EMPTY"


@dataclass
class BackendStats:
    """What the backend did: HTTP attempts sent, retries, requests that failed after all retries."""

    attempts: int = 0
    retries: int = 0
    failures: int = 0


class _RateLimiter:
    """Spaces request starts at least ``60 / rpm`` seconds apart (a simple, fair pacing limiter)."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _classify(exc: BaseException) -> tuple[bool, float | None]:
    """(retryable, server's Retry-After in seconds if any) for an exception raised by one attempt."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = None
        try:
            ra = exc.response.headers.get("retry-after-ms")
            retry_after = float(ra) / 1000 if ra else None
            if retry_after is None and exc.response.headers.get("retry-after"):
                retry_after = float(exc.response.headers["retry-after"])
        except (TypeError, ValueError):
            retry_after = None
        return (status in RETRY_STATUS or status >= 500), retry_after
    if isinstance(exc, openai.APIConnectionError | openai.APIResponseValidationError | MalformedResponse):
        return True, None  # timeouts are APIConnectionError subclasses
    if isinstance(exc, openai.OpenAIError):
        return False, None
    # a body the client could not decode (invalid JSON, wrong shape) surfaces as a parsing error
    return isinstance(exc, ValueError | TypeError | KeyError | AttributeError | IndexError), None


def describe_failure(exc: BaseException, url: str, model: str, key_env: str | None) -> tuple[str, str]:
    """(kind, one-line cause) of a request that failed for good: what a user must fix, in their terms."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout", f"no reply from {url} within the timeout"
    if isinstance(exc, openai.APIConnectionError):
        chain, x = [], exc.__cause__ or exc.__context__
        while x is not None and len(chain) < 10:  # httpx wraps the socket's own error a few levels down
            chain.append(x)
            x = x.__cause__ or x.__context__
        if any(isinstance(c, ConnectionRefusedError) for c in chain):
            return "connection", f"connection refused by {url} (is the server running?)"
        why = " ".join(str(chain[-1] if chain else exc).split())[:200]
        return "connection", f"cannot connect to {url} ({why})"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            where = f" in {key_env}" if key_env else " (api_key_env names the variable holding it)"
            return "auth", f"authentication failed at {url} (HTTP {status}): check the key{where}"
        if status == 404:
            return "not_found", f"model '{model}' not found at {url} (HTTP 404)"
        if status == 429:
            return "rate_limit", f"rate limited by {url} (HTTP 429) after every retry"
        if status >= 500:
            return "server", f"server error from {url} (HTTP {status}) after every retry"
        return "bad_request", f"request refused by {url} (HTTP {status})"
    return "malformed", f"unreadable reply from {url}"


class OpenAIBackend(TeacherBackend):
    """Chat completions from an OpenAI-compatible server, ``cfg.concurrency`` requests in flight at once."""

    def __init__(self, cfg: TeacherConfig, seed: int = 0):
        if not cfg.model:
            raise ConfigError(f"teacher '{cfg.name}': openai backend needs 'model' (the served model name)")
        self.cfg = cfg
        self.seed = seed
        self._key = resolve_api_key(cfg)
        self._rng = random.Random(seed)
        self.stats = BackendStats()

    def scrub(self, text: str) -> str:
        """``text`` with the API key removed (error messages may echo request details)."""
        return text.replace(self._key, "[redacted]") if self._key and self._key != "EMPTY" else text

    def generate(self, requests: Sequence[GenRequest], on_result: OnResult) -> None:
        """Complete every request; ``on_result`` runs on this thread as each one finishes."""
        if not requests:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._run(list(requests), on_result))
            return
        # called from inside an event loop (a notebook): run ours on a worker thread, results in order there
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._run(list(requests), on_result)).result()

    def _groups(self, requests: list[GenRequest]) -> list[list[GenRequest]]:
        """One request per HTTP call, or with ``n_per_request`` all samples of one prompt together (n=k)."""
        if not self.cfg.n_per_request:
            return [[r] for r in requests]
        groups: dict[tuple[str, str, str], list[GenRequest]] = {}
        for r in requests:
            groups.setdefault((r.question.id, r.style, repr(r.messages)), []).append(r)
        return list(groups.values())

    async def _run(self, requests: list[GenRequest], on_result: OnResult) -> None:
        from openai import AsyncOpenAI

        extra = {}
        if (self.cfg.base_url or "").startswith("http://"):
            # plain HTTP (a local vLLM / Ollama): no TLS, so skip loading the CA bundle (~60 ms per client)
            from openai import DefaultAsyncHttpxClient

            extra["http_client"] = DefaultAsyncHttpxClient(verify=False)
        client = AsyncOpenAI(
            api_key=self._key, base_url=self.cfg.base_url, max_retries=0, timeout=self.cfg.timeout_s, **extra
        )
        limiter = _RateLimiter(self.cfg.requests_per_minute)
        queue: asyncio.Queue[list[GenRequest]] = asyncio.Queue()
        groups = self._groups(requests)
        for g in groups:
            queue.put_nowait(g)

        async def worker() -> None:
            while True:
                try:
                    group = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                comps = await self._complete(client, limiter, group)
                for req, comp in zip(group, comps, strict=False):
                    on_result(req, comp)
                if len(comps) < len(group):  # the server returned fewer choices than n: ask again for the rest
                    queue.put_nowait(group[len(comps) :])

        try:
            workers = [asyncio.create_task(worker()) for _ in range(min(self.cfg.concurrency, len(groups)))]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            await client.close()

    async def _complete(self, client, limiter: _RateLimiter, group: list[GenRequest]) -> list[Completion]:
        """Completions for the first k requests of ``group`` (k >= 1), or an error for each after all retries."""
        from openai.types.chat import ChatCompletion

        cfg = self.cfg
        req = group[0]
        attempt = 0
        while True:
            await limiter.wait()
            self.stats.attempts += 1
            try:
                kwargs = dict(
                    model=cfg.model,
                    messages=req.messages,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_tokens=cfg.max_tokens,
                )
                if len(group) > 1:
                    kwargs["n"] = len(group)
                if cfg.send_seed:
                    kwargs["seed"] = req.seed
                # client.post skips the SDK's per-field param transform (~2 ms of CPU per request, a no-op for
                # our plain-JSON body) but keeps its auth, timeout, error types and response parsing
                resp = await client.post("/chat/completions", body=kwargs, cast_to=ChatCompletion)
                choices = sorted(getattr(resp, "choices", None) or [], key=lambda c: c.index or 0)
                texts = [c.message.content if c.message is not None else None for c in choices][: len(group)]
                if not texts or not all(isinstance(t, str) for t in texts):
                    raise MalformedResponse("reply has no choices" if not texts else "reply has no message content")
                pt = ct = 0
                if resp.usage is not None:
                    pt, ct = int(resp.usage.prompt_tokens or 0), int(resp.usage.completion_tokens or 0)
                out = []
                for i, (text, choice) in enumerate(zip(texts, choices, strict=False)):
                    # one prompt paid once: its tokens go to the first path; completion tokens are shared out
                    share = ct // len(texts) + (ct % len(texts) if i == 0 else 0)
                    usage = {"prompt_tokens": pt if i == 0 else 0, "completion_tokens": share}
                    meta = {"finish_reason": choice.finish_reason, "model": resp.model, "retries": attempt}
                    if len(group) > 1:
                        meta["n"] = len(group)
                    out.append(Completion(text=text, usage=usage, retries=attempt, metadata=meta))
                return out
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (classified below; unknown kinds are not retried)
                retryable, retry_after = _classify(exc)
                if not retryable or attempt >= cfg.max_retries:
                    self.stats.failures += len(group)
                    url = cfg.base_url or "https://api.openai.com/v1"
                    kind, cause = describe_failure(exc, url, cfg.model, cfg.api_key_env)
                    msg = self.scrub(f"{cause}: {type(exc).__name__}: {exc}")[:500]
                    return [Completion(text=None, error=msg, retries=attempt, kind=kind) for _ in group]
                base = min(MAX_BACKOFF_S, cfg.retry_backoff_s * 2**attempt)
                delay = base / 2 + self._rng.uniform(0, base / 2)  # "equal jitter"
                if retry_after is not None:
                    delay = max(delay, min(retry_after, MAX_BACKOFF_S))
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(delay)
