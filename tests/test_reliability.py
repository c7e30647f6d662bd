"""Issue 11, reliability: crash anywhere, concurrent use (the run lock), disk problems, remote faults, secrets,
and bad input to the stage commands. Each test says what it guarantees; docs/reliability.md lists them."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from chat_server import (
    ChatServer,
    Reply,
    chat_server_fixture,  # noqa: F401  (the chat_server fixture)
)
from conftest import REPO, SVAMP, run_cli
from cotdistill.faults import ENV as KILL_AT

SYNTH = {
    "teachers": [{"name": "s1", "backend": "synthetic"}, {"name": "s2", "backend": "synthetic"}],
    "generate": {"styles": ["cot", "program"], "samples": 2},
}
NO_ENCODER = ["--set", "filter.consensus.enabled=false"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", **extra}


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str, after_progress: bool = False) -> str:
    """Exit 2, no traceback, the error as one stderr line (the last one, after progress bars, if allowed)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    err = proc.stderr.strip()
    if after_progress:
        err = err.splitlines()[-1]
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, (n, err)
    return err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def _lab_run(root: Path, n: int = 6) -> Path:
    r = run_cli(
        "questions", "--out", str(root), "--source", "lab:arith", "--train", str(n), "--dev", "0", "--test", "0"
    )
    assert r.returncode == 0, r.stderr
    return root


def _synth_config(tmp: Path, **extra) -> Path:
    p = tmp / "synth.yaml"
    p.write_text(yaml.safe_dump({**SYNTH, **extra}))
    return p


def _svamp_run(svamp_json: Path, root: Path) -> Path:
    r = run_cli("import", "mcc-kd", str(svamp_json), "--out", str(root))
    assert r.returncode == 0, r.stderr
    return root


# ---------------------------------------------------------------- crash anywhere: generate


def _paths_key(run: Path) -> list[tuple]:
    """What must equal after a resume: every path (id, text, answer), order-free; cache hits may differ in metadata."""
    return sorted((p["id"], p["text"], p["answer"]) for p in _jsonl(run / "paths.jsonl"))


@pytest.fixture(scope="module")
def generated_ref(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("gen-ref")
    run = _lab_run(tmp / "run")
    r = run_cli("generate", str(run), "-c", str(_synth_config(tmp)))
    assert r.returncode == 0, r.stderr
    assert len(_jsonl(run / "paths.jsonl")) == 6 * 2 * 2 * 2
    return run


def _kill_then_resume_generate(tmp: Path, point: str, ref: Path) -> None:
    run = _lab_run(tmp / "run")
    cfg = _synth_config(tmp)
    r = run_cli("generate", str(run), "-c", str(cfg), env={KILL_AT: point})
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    killed_with = len(_jsonl(run / "paths.jsonl"))
    assert 0 < killed_with < 48
    r = run_cli("generate", str(run), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert _paths_key(run) == _paths_key(ref)
    ids = [p["id"] for p in _jsonl(run / "paths.jsonl")]
    assert len(ids) == len(set(ids)) == 48  # every path exactly once


def test_generate_sigkill_after_a_path_resumes_to_the_same_paths(tmp_path: Path, generated_ref: Path) -> None:
    _kill_then_resume_generate(tmp_path, "generate:path:7", generated_ref)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["generate:path:1", "generate:path:30"])
def test_generate_sigkill_matrix(tmp_path: Path, generated_ref: Path, point: str) -> None:
    _kill_then_resume_generate(tmp_path, point, generated_ref)


@pytest.mark.slow
def test_generate_sigkill_between_cache_and_path_write(tmp_path: Path, chat_server: ChatServer) -> None:
    """Killed after an answer reached the request cache but before its path was written: the resume writes that
    path from the cache (the server is not asked again) and every path exists exactly once. (Only remote and
    local-model teachers use the cache, so this needs the openai backend, not the synthetic one.)"""
    chat_server.reply = lambda r: Reply(content="Step 1: 2 + 2 = 4.\nThe answer is 4.")
    run = _lab_run(tmp_path / "run")
    teacher = {"name": "t", "backend": "openai", "model": "m", "base_url": chat_server.base_url, "concurrency": 1}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"teachers": [teacher], "generate": {"styles": ["cot", "program"], "samples": 1}}))
    r = run_cli("generate", str(run), "-c", str(cfg), env={KILL_AT: "generate:cache_only:4"})
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert len(_jsonl(run / "paths.jsonl")) == 4  # the 5th answer is in the cache only
    sent = chat_server.count
    assert sent == 5
    r = run_cli("generate", str(run), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    ids = [p["id"] for p in _jsonl(run / "paths.jsonl")]
    assert len(ids) == len(set(ids)) == 12
    assert chat_server.count - sent == 12 - 5  # the cached answer was not requested again


# ---------------------------------------------------------------- crash anywhere: filter


@pytest.fixture(scope="module")
def filtered_ref(tmp_path_factory) -> Path:
    if not SVAMP.exists():
        pytest.skip(f"real data not available: {SVAMP} is absent")
    run = _svamp_run(SVAMP, tmp_path_factory.mktemp("filter-ref") / "run")
    r = run_cli("filter", str(run), *NO_ENCODER, "--set", "filter.batch_paths=500")
    assert r.returncode == 0, r.stderr
    return run


def _kill_then_resume_filter(svamp_json: Path, tmp: Path, point: str, ref: Path) -> None:
    run = tmp / "run"
    shutil.copytree(ref, run)
    for f in ("filtered.jsonl", "filter_stats.json", "config.yaml"):
        (run / f).unlink()
    args = ("filter", str(run), *NO_ENCODER, "--set", "filter.batch_paths=500")
    r = run_cli(*args, env={KILL_AT: point})
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert not (run / "filter_stats.json").exists()
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert (run / "filtered.jsonl").read_bytes() == (ref / "filtered.jsonl").read_bytes()  # verdicts identical
    assert (run / "filter_stats.json").read_bytes() == (ref / "filter_stats.json").read_bytes()
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []  # a killed write's temp is cleared


def test_filter_sigkill_mid_write_resumes_to_identical_verdicts(svamp_json, tmp_path: Path, filtered_ref) -> None:
    _kill_then_resume_filter(svamp_json, tmp_path, "filter:batch:3", filtered_ref)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["filter:batch:0", "filter:batch:6", "filter:before_stats"])
def test_filter_sigkill_matrix(svamp_json, tmp_path: Path, filtered_ref, point: str) -> None:
    _kill_then_resume_filter(svamp_json, tmp_path, point, filtered_ref)


# ---------------------------------------------------------------- concurrent use: the run lock


def _hold_lock(run: Path, command: str = "holder") -> subprocess.Popen:
    code = (
        "import sys,time; from cotdistill.lock import acquire_run_lock; "
        f"acquire_run_lock(sys.argv[1], {command!r}); print('held', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize(
    "command",
    ["generate", *(pytest.param(c, marks=pytest.mark.slow) for c in ("filter", "train", "questions", "import"))],
)
def test_second_process_on_a_run_refuses_with_the_holder(tmp_path: Path, command: str) -> None:
    run = _lab_run(tmp_path / "run")
    before = _snapshot(run)
    holder = _hold_lock(run)
    try:
        args = {
            "generate": ("generate", str(run), "-c", str(_synth_config(tmp_path))),
            "filter": ("filter", str(run), *NO_ENCODER),
            "train": ("train", str(run)),
            "questions": ("questions", "--out", str(run), "--source", "lab:arith", "--train", "2"),
            "import": ("import", "mcc-kd", str(tmp_path / "x.json"), "--out", str(run)),
        }[command]
        r = run_cli(*args)
        _one_line_error(r, f"run directory {run} is in use by pid {holder.pid} (command holder)")
        after = _snapshot(run)
        after.pop(".lock")
        before.pop(".lock", None)
        assert after == before  # nothing written, nothing interleaved
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_freed_when_the_holder_is_sigkilled_and_removed_on_exit(tmp_path: Path) -> None:
    run = _lab_run(tmp_path / "run")
    holder = _hold_lock(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (run / ".lock").exists()  # stale file, but the kernel dropped the lock with the process
    r = run_cli("generate", str(run), "-c", str(_synth_config(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert not (run / ".lock").exists()


def test_lock_is_reentrant_in_process_and_skipped_on_nonzero_ranks(tmp_path: Path, monkeypatch) -> None:
    from cotdistill.lock import RunDirBusyError, acquire_run_lock, release_run_lock

    run = tmp_path / "run"
    assert acquire_run_lock(run, "a") == (run / ".lock").resolve()
    assert acquire_run_lock(run, "b") is not None  # same process: no self-deadlock (run -> stages)
    code = "import sys; from cotdistill.lock import acquire_run_lock; acquire_run_lock(sys.argv[1], 'x')"
    r = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, env=_env())
    assert r.returncode != 0 and "RunDirBusyError" in r.stderr and f"pid {os.getpid()}" in r.stderr
    r = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, env=_env(RANK="1"))
    assert r.returncode == 0, r.stderr  # a torchrun worker of the same command
    release_run_lock(run)
    assert not (run / ".lock").exists()
    with pytest.raises(RunDirBusyError, match="in use"):
        holder = _hold_lock(run)
        try:
            acquire_run_lock(run, "c")
        finally:
            holder.kill()
            holder.wait()


def test_concurrent_generates_never_interleave(tmp_path: Path) -> None:
    """Two generate processes started together: one refuses (exit 2), the other writes each path exactly once."""
    run = _lab_run(tmp_path / "run", n=20)
    cfg = _synth_config(tmp_path)
    args = [sys.executable, "-m", "cotdistill.cli", "generate", str(run), "-c", str(cfg)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())]
    procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
    codes = [p.wait() for p in procs]
    errs = [p.stderr.read() for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert 0 in codes, errs
    ids = [p["id"] for p in _jsonl(run / "paths.jsonl")]
    assert len(ids) == len(set(ids)) == 20 * 8
    if codes != [0, 0]:  # they overlapped (the usual case): the loser said why
        loser = errs[codes.index(2)]
        assert "is in use by pid" in loser and "Traceback" not in loser


# ---------------------------------------------------------------- disk problems


def _fsize_limit(nbytes: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG (an OSError), not a signal death
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return pre


def _cli_limited(nbytes: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cotdistill.cli", *args],
        capture_output=True,
        text=True,
        env=_env(),
        preexec_fn=_fsize_limit(nbytes),
    )


def test_full_disk_during_import_keeps_the_previous_run(svamp_json, tmp_path: Path) -> None:
    run = _svamp_run(svamp_json, tmp_path / "run")
    before = _snapshot(run)
    r = _cli_limited(200_000, "import", "mcc-kd", str(svamp_json), "--out", str(run))
    _one_line_error(r, "cannot write", str(run / "paths.jsonl"), "File too large", "kept")
    assert _snapshot(run) == before  # no temp file, nothing half-replaced


def test_full_disk_during_filter_and_generate_is_clear_and_loses_nothing(tmp_path: Path) -> None:
    run = _lab_run(tmp_path / "run", n=30)
    cfg = _synth_config(tmp_path)
    r = run_cli("generate", str(run), "-c", str(cfg))  # a complete generate first
    assert r.returncode == 0, r.stderr
    size = (run / "paths.jsonl").stat().st_size
    r = _cli_limited(size // 2, "filter", str(run), *NO_ENCODER)  # filtered.jsonl is bigger than paths.jsonl
    _one_line_error(r, "cannot write", "filtered.jsonl", "File too large")
    assert not (run / "filtered.jsonl").exists() and not list(run.glob(".*.tmp"))
    # generate more paths (samples 3) into a disk that fills part way: complete lines stay, the resume finishes
    more = _synth_config(tmp_path, generate={"styles": ["cot", "program"], "samples": 3})
    complete = (run / "paths.jsonl").read_bytes()
    r = _cli_limited(size + size // 4, "generate", str(run), "-c", str(more))
    _one_line_error(r, "cannot write", str(run / "paths.jsonl"), "File too large", after_progress=True)
    now = (run / "paths.jsonl").read_bytes()
    assert now.startswith(complete) and now.endswith(b"\n")  # nothing lost, no torn line
    r = run_cli("generate", str(run), "-c", str(more))
    assert r.returncode == 0, r.stderr
    ids = [p["id"] for p in _jsonl(run / "paths.jsonl")]
    assert len(ids) == len(set(ids)) == 30 * 2 * 2 * 3


def _read_only(run: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI with ``run`` read-only: chmod for a normal user; a read-only bind mount for root."""
    cmd = [sys.executable, "-m", "cotdistill.cli", *args]
    if os.geteuid() != 0:
        for p in [run, *run.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=_env())
        finally:
            for p in [run, *run.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: cannot make a read-only directory")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(run), "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.decode()[:200]}")
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(run), *cmd], capture_output=True, text=True, env=_env()
    )


@pytest.mark.parametrize(
    "stage", ["filter", *(pytest.param(c, marks=pytest.mark.slow) for c in ("generate", "questions"))]
)
def test_read_only_run_directory_is_a_clear_error(tmp_path: Path, stage: str) -> None:
    run = _lab_run(tmp_path / "run")
    cfg = _synth_config(tmp_path)
    before = _snapshot(run)
    args = {
        "filter": ["filter", str(run), *NO_ENCODER],
        "generate": ["generate", str(run), "-c", str(cfg)],
        "questions": ["questions", "--out", str(run), "--source", "lab:arith", "--train", "3"],
    }[stage]
    r = _read_only(run, args)
    _one_line_error(r, "cannot write", str(run))
    assert _snapshot(run) == before


# ---------------------------------------------------------------- remote faults


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_server_down_for_the_whole_run_fails_clearly_after_bounded_retries(tmp_path: Path) -> None:
    """Every request fails after max_retries; the run says so in one line naming the cause, exits 3 (issue 24:
    it exited 0 with "re-run to retry"), and keeps the finished work."""
    run = _lab_run(tmp_path / "run", n=3)
    synth = run_cli("generate", str(run), "-c", str(_synth_config(tmp_path)))  # some finished work first
    assert synth.returncode == 0
    kept = (run / "paths.jsonl").read_bytes()
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    t = {"backend": "openai", "model": "m", "base_url": url, "max_retries": 2, "retry_backoff_s": 0.01, "timeout_s": 5}
    cfg = tmp_path / "down.yaml"
    cfg.write_text(yaml.safe_dump({"teachers": [{"name": "remote", **t}], "generate": {"styles": ["cot"]}}))
    start = time.monotonic()
    r = run_cli("generate", str(run), "-c", str(cfg), env={"OPENAI_API_KEY": "unused"})
    elapsed = time.monotonic() - start
    assert r.returncode == 3 and "Traceback" not in r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err  # no table for a stage that did nothing: the one line says it all
    assert "every request failed, all 3" in err and f"connection refused by {url}" in err, err
    fails = _jsonl(run / "logs" / "generate_failures.jsonl")
    assert len(fails) == 3 and all(f["retries"] == 2 for f in fails)  # bounded: max_retries each, then recorded
    assert all("connect" in f["error"].lower() for f in fails), fails[0]["error"]
    assert (run / "paths.jsonl").read_bytes() == kept  # finished work kept, nothing half-written
    assert elapsed < 300  # sanity only (a hung run would never get here); not a timing assertion


# ---------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("teacher_extra", "needle"),
    [
        ({"api_key": "KEYVALUE"}, "'api_key' must not hold a secret"),
        ({"token": "KEYVALUE"}, "'token' must not hold a secret"),
        ({"api_key_env": "KEYVALUE"}, "NAME of an environment variable"),
    ],
)
def test_literal_key_in_config_is_rejected_with_a_hint_and_never_echoed(tmp_path: Path, teacher_extra, needle) -> None:
    key = "sk-" + os.urandom(16).hex()
    extra = {k: (key if v == "KEYVALUE" else v) for k, v in teacher_extra.items()}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"teachers": [{"name": "t", "backend": "openai", "model": "m", **extra}]}))
    run = _lab_run(tmp_path / "run")
    before = _snapshot(run)
    r = run_cli("generate", str(run), "-c", str(cfg))
    err = _one_line_error(r, needle, "api_key_env")
    assert key not in err and key not in r.stdout
    assert _snapshot(run) == before  # the bad config was not saved as RUN/config.yaml


# ---------------------------------------------------------------- bad input to the stage commands and configs


BAD_CONFIGS = [
    # (yaml text or bytes, needles in the one-line error)
    ("teachers: [\n  {name: a\n", ("malformed YAML",)),
    ("", ("config file is empty",)),
    ("- 1\n- 2\n", ("config must be a mapping",)),
    (b"name: caf\xe9\n", ("not valid UTF-8",)),
    ("train: {method: distil-magic}\n", ("train.method", "unknown method 'distil-magic'")),
    ("train: {epochs: zero}\n", ("train.epochs",)),
    ("train: {epochs: 0, batch_size: -1, lr_typo: 3}\n", ("train.epochs", "train.batch_size", "train.lr_typo")),
    ("teachers: [{name: a, backend: carrier-pigeon}]\n", ("teachers.0.backend",)),
    ("teachers: [{name: a}, {name: a}]\n", ("teacher names must be unique",)),
    ("students: [{name: s, preset: gpt-17}]\n", ("students.0.preset",)),
    ("students: [{name: s}, {name: s}]\n", ("student names must be unique",)),
    ("filter: {judge: {kind: llm, teacher: nobody}}\n", ("filter.judge.teacher 'nobody'",)),
    ("filter: {consensus: {delta: 7}}\n", ("filter.consensus.delta",)),
    ("teachers: [{name: a, temperature: 9, top_p: 0}]\n", ("teachers.0.temperature", "teachers.0.top_p")),
    ("questions: {train: many}\n", ("questions.train",)),
    ("eval: {ensemble: [vote, telepathy]}\n", ("eval.ensemble",)),
    ("unknown_section: {a: 1}\n", ("unknown_section", "unknown field")),
]


# every case through generate; three of them through filter and train too (the same loader serves every stage)
CONFIG_CASES = [pytest.param("generate", i, id=f"generate-cfg{i}") for i in range(len(BAD_CONFIGS))] + [
    pytest.param(cmd, i, id=f"{cmd}-cfg{i}", marks=pytest.mark.slow) for cmd in ("filter", "train") for i in (0, 4, 8)
]


@pytest.mark.parametrize(("command", "case"), CONFIG_CASES)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path: Path, command: str, case: int) -> None:
    text, needles = BAD_CONFIGS[case]
    run = tmp_path / "run"
    run.mkdir()
    (run / "questions.jsonl").write_text("")
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    r = run_cli(command, str(run), "-c", str(cfg))
    err = _one_line_error(r, *needles)
    assert "bad.yaml" in err  # names where
    assert sorted(p.name for p in run.iterdir()) == ["questions.jsonl"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--set", "train.epochs"], ("override 'train.epochs' must look like key.path=value",)),
        (["--set", "teachers.5.model=x"], ("teachers",)),
        (["--set", "generate.styles=[cot, haiku]", "--set", "teachers=[{name: a, backend: synthetic}]"], ("haiku",)),
    ],
)
def test_bad_overrides_and_unknown_styles(tmp_path: Path, args: list[str], needles) -> None:
    run = _lab_run(tmp_path / "run")
    before = _snapshot(run)
    r = run_cli("generate", str(run), *args)
    _one_line_error(r, *needles)
    after = _snapshot(run)
    after.pop("config.yaml", None)
    before.pop("config.yaml", None)
    assert {k: v for k, v in after.items() if not k.startswith(("cache", "logs"))} == before


@pytest.mark.parametrize(
    ("paths_content", "needles"),
    [
        (b'{"schema_version": 1, "id": "x"', ("paths.jsonl:1",)),
        (b"\xc3\x28 garbage\n", ("paths.jsonl:1",)),
        (
            b'{"schema_version": 1, "id": "p", "question_id": "q", "teacher": "t", "style": "cot", "sample": "zero"}\n',
            ("paths.jsonl:1",),
        ),
        (b"[1, 2, 3]\n", ("paths.jsonl:1",)),
    ],
)
def test_filter_bad_paths_file(tmp_path: Path, paths_content: bytes, needles) -> None:
    run = _lab_run(tmp_path / "run", n=2)
    (run / "paths.jsonl").write_bytes(paths_content)
    r = run_cli("filter", str(run), *NO_ENCODER)
    _one_line_error(r, *needles)
    assert not (run / "filtered.jsonl").exists() and not (run / "filter_stats.json").exists()


def test_train_without_students_and_with_an_unknown_method(tmp_path: Path) -> None:
    run = _lab_run(tmp_path / "run", n=2)
    r = run_cli("train", str(run), "--method", "sft-multi")
    _one_line_error(r, "students list")
    r = run_cli("train", str(run), "--method", "telepathy")
    _one_line_error(r, "unknown method 'telepathy'")
    assert not (run / "students").exists() and not (run / "checkpoints").exists()


def test_generate_without_questions_and_on_a_huge_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = run_cli("generate", str(run), "-c", str(_synth_config(tmp_path)))
    _one_line_error(r, "questions.jsonl")
    run2 = _lab_run(tmp_path / "run2", n=1)
    huge = json.loads((run2 / "questions.jsonl").read_text())
    huge["question"] = "x" * 5_000_000
    huge["gold"] = 12345  # wrong type on a 5 MB line: found and named, not echoed whole
    (run2 / "questions.jsonl").write_text(json.dumps(huge) + "\n")
    r = run_cli("generate", str(run2), "-c", str(_synth_config(tmp_path)))
    err = _one_line_error(r, "questions.jsonl:1", "gold")
    assert len(err) < 1000
    assert not (run2 / "paths.jsonl").exists()
