"""Throughput of the openai teacher backend: N requests, injected latency L, concurrency C vs the ideal N*L/C.

Runs a local chat-completions server on 127.0.0.1 (tests/chat_server.py) that answers every request after L
seconds, then times (1) the backend alone and (2) the whole ``generate`` stage (prompts, cache, paths file).
Goals: the stage takes under 2x the ideal time (issue 3) and runs at >= 90% of the ideal throughput
(issue 10). Also times C=1 on a few requests: per-request overhead.

    PYTHONPATH=src python benchmarks/bench_generate.py [--requests 200 --latency 0.1 --concurrency 32]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from chat_server import ChatServer, Reply  # noqa: E402
from cotdistill.config import RunConfig, TeacherConfig  # noqa: E402
from cotdistill.io import atomic_write_jsonl  # noqa: E402
from cotdistill.records import Question  # noqa: E402
from cotdistill.rundir import RunDir  # noqa: E402
from cotdistill.stages.generate import run_generate  # noqa: E402
from cotdistill.teachers.base import GenRequest  # noqa: E402
from cotdistill.teachers.openai_backend import OpenAIBackend  # noqa: E402


def questions(n: int) -> list[Question]:
    return [Question(id=f"q{i}", task="math", question=f"What is {i} plus {i}?", gold=str(2 * i)) for i in range(n)]


def time_backend(url: str, n: int, concurrency: int) -> float:
    cfg = TeacherConfig(name="t", backend="openai", model="m", base_url=url, concurrency=concurrency)
    reqs = [
        GenRequest(
            key=f"{q.id}|t|cot|0", question=q, style="cot", sample=0, messages=[{"role": "user", "content": q.question}]
        )
        for q in questions(n)
    ]
    done = []
    start = time.perf_counter()
    OpenAIBackend(cfg, seed=0).generate(reqs, lambda r, c: done.append(c.text is not None))
    elapsed = time.perf_counter() - start
    assert len(done) == n and all(done), "some requests failed"
    return elapsed


def time_stage(url: str, n: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        run = RunDir.at(d)
        atomic_write_jsonl(run.questions, questions(n))
        cfg = RunConfig.model_validate(
            {
                "teachers": [
                    {"name": "t", "backend": "openai", "model": "m", "base_url": url, "concurrency": concurrency}
                ],
                "generate": {"styles": ["cot"], "samples": 1},
            }
        )
        start = time.perf_counter()
        s = run_generate(run, cfg)
        elapsed = time.perf_counter() - start
        assert s.teachers["t"].completed == n, "some requests failed"
        return elapsed


def _serve(latency: float, port_q: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    with ChatServer(reply=lambda r: Reply(content="Step 1: add.\nThe answer is 4.", delay=latency)) as srv:
        port_q.put(srv.base_url)
        stop.wait()
        port_q.put((time.process_time(), srv.count))  # the server's CPU seconds and requests served


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def report(what: str, times: list[float], ideal: float) -> None:
    best, med = min(times), median(times)
    print(f"{what} best/median {best:.3f} / {med:.3f} s   ratio to ideal {best / ideal:.2f}x / {med / ideal:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    ideal = a.requests * a.latency / a.concurrency
    # the server runs in its own process, as a real one would: it must not share the client's GIL
    ctx = multiprocessing.get_context("fork")
    port_q, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(a.latency, port_q, stop), daemon=True)
    server.start()
    url = port_q.get(timeout=60)
    try:
        time_backend(url, 8, 8)  # warm-up: imports, first connections
        cpu0 = time.process_time()
        backend = [time_backend(url, a.requests, a.concurrency) for _ in range(a.repeats)]
        cpu_per_req = (time.process_time() - cpu0) / (a.repeats * a.requests)
        stage = [time_stage(url, a.requests, a.concurrency) for _ in range(a.repeats)]
        serial_n = 10
        serial = time_backend(url, serial_n, 1)
    finally:
        stop.set()
        server_cpu, served = port_q.get(timeout=60)
        server.join(timeout=10)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"client CPU per request (backend runs): {cpu_per_req * 1000:.2f} ms")
    print(f"test-server CPU per request: {server_cpu / served * 1000:.2f} ms ({served} served)")
    print(f"{a.requests} requests, {a.latency * 1000:.0f} ms latency, concurrency {a.concurrency}")
    print(f"ideal (N*L/C)              {ideal:.3f} s")
    report("backend alone ", backend, ideal)
    report("generate stage", stage, ideal)
    per = serial / serial_n
    print(f"concurrency 1: {per * 1000:.1f} ms per request vs {a.latency * 1000:.0f} ms latency")
    verdict = "PASS" if median(stage) < 2 * ideal else "FAIL"
    print(f"goal: median generate-stage time < 2x ideal -> {verdict} ({median(stage) / ideal:.2f}x)")
    # issue 10: throughput as a share of the ideal; with N not a multiple of C even a perfect client needs
    # ceil(N/C) latency waves, so that bound is printed too
    waves = math.ceil(a.requests / a.concurrency) * a.latency
    eff = ideal / median(stage)
    verdict = "PASS" if eff >= 0.9 else "FAIL"
    print(f"waves bound ceil(N/C)*L     {waves:.3f} s = {ideal / waves:.1%} of the ideal for a perfect client")
    print(f"goal: median generate stage at >= 90% of the ideal throughput -> {verdict} ({eff:.1%})")


if __name__ == "__main__":
    main()
