"""Issue 24: nothing lost, nothing silent. The behaviours that are not a one-line error (those are the corpus,
tests/test_bad_inputs.py): torn-tail repair, config.yaml kept on failure, exit codes 3 and 4, file modes, counted
and said input problems, the internal-error log, and the 4.5 MB path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from chat_server import ChatServer, Reply, default_reply
from conftest import run_cli
from cotdistill.config import dump_config, load_config
from cotdistill.errors import ConfigError
from cotdistill.io import JsonlAppender, atomic_write_text, repair_torn_tail
from cotdistill.records import Question
from cotdistill.rundir import RunDir

SYNTH = {"teachers": [{"name": "s1", "backend": "synthetic"}], "generate": {"styles": ["cot"]},
         "filter": {"consensus": {"enabled": False}}}  # fmt: skip


def _lab_run(tmp: Path, n: int = 3) -> RunDir:
    from cotdistill.stages.questions import write_questions

    cfg = load_config(None, ["questions.source=lab:arith", f"questions.train={n}", "questions.dev=0",
                             "questions.test=0"])  # fmt: skip
    run = RunDir.at(tmp / "run").ensure()
    write_questions(run, cfg)
    return run


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


# ---------------------------------------------------------------- 2. torn-tail repair


@pytest.mark.parametrize(
    ("content", "after"),
    [
        (b'{"a": 1}\n{"b": 2}', b'{"a": 1}\n{"b": 2}\n'),  # a complete last record missing its newline: kept
        (b'{"only": 1}', b'{"only": 1}\n'),  # a one-record file is not emptied
        (b'{"a": 1}\n{"b": 2', b'{"a": 1}\n'),  # torn: cut
        (b'{"a": 1}\n[1, 2]', b'{"a": 1}\n'),  # not an object: cut
        (b'{"a": 1}\n{"b": "\xff"}', b'{"a": 1}\n'),  # not UTF-8: cut
        (b'{"a": 1}\n', b'{"a": 1}\n'),  # complete: untouched
    ],
)
def test_torn_tail_repair_removes_only_a_line_that_does_not_parse(tmp_path: Path, content: bytes, after: bytes):
    p = tmp_path / "x.jsonl"
    p.write_bytes(content)
    repair_torn_tail(p)
    assert p.read_bytes() == after
    with JsonlAppender(p) as ap:  # and appending goes on after it, one record per line
        ap.write({"c": 3})
    assert p.read_bytes() == after + b'{"c": 3}\n'


def test_generate_keeps_a_last_path_without_newline(tmp_path: Path) -> None:
    """The issue's case: 400 paths became 399 on the next generate; here every path stays, none is redone."""
    from cotdistill.stages.generate import run_generate

    run = _lab_run(tmp_path)
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in SYNTH.items()])
    run_generate(run, cfg)
    data = run.paths.read_bytes()
    run.paths.write_bytes(data.rstrip(b"\n"))
    summary = run_generate(run, cfg)
    assert run.paths.read_bytes() == data and summary.teachers["s1"].existing == 3


# ---------------------------------------------------------------- 3. RUN/config.yaml only after validation


def test_a_failed_override_leaves_config_yaml_and_the_next_plain_run_works(tmp_path: Path) -> None:
    run = _lab_run(tmp_path)
    run.config.write_text(dump_config(load_config(None, [f"{k}={json.dumps(v)}" for k, v in SYNTH.items()])))
    before = run.config.read_bytes()
    r = run_cli("generate", str(run.root), "--set", "generate.styles=[bogus]")
    assert r.returncode == 2 and "bogus" in r.stderr
    assert run.config.read_bytes() == before  # byte for byte
    r = run_cli("generate", str(run.root))
    assert r.returncode == 0, r.stderr  # it failed too: the bad style had been saved


def test_eval_device_cuda_without_cuda_is_refused_and_not_saved(tmp_path: Path, monkeypatch) -> None:
    import torch

    from cotdistill.stages.resolve import resolve_run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = _lab_run(tmp_path)
    run.config.write_text(dump_config(load_config(None)))
    before = run.config.read_bytes()
    with pytest.raises(ConfigError, match="eval.device: 'cuda' but CUDA is not available"):
        resolve_run(run.root, None, ["eval.device=cuda"], lock="eval")
    assert run.config.read_bytes() == before


# ---------------------------------------------------------------- 4. exit codes that mean something


def _two_teachers(tmp: Path, url: str, **remote: object) -> Path:
    cfg = {**SYNTH, "teachers": [*SYNTH["teachers"], {"name": "r", "backend": "openai", "model": "m",
           "base_url": url, "max_retries": 0, "timeout_s": 5, **remote}]}  # fmt: skip
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "c.yaml"


def test_partial_failure_generate_retries_later_run_stops_with_4(tmp_path: Path) -> None:
    """One teacher's server is down, the other works: generate keeps "re-run to retry" (exit 0, paths written);
    run stops there with exit 4 (it went on as if generation were complete)."""
    run = _lab_run(tmp_path)
    cfg = _two_teachers(tmp_path, "http://127.0.0.1:9/v1")
    r = run_cli("generate", str(run.root), "-c", str(cfg), env={"OPENAI_API_KEY": "x"})
    assert r.returncode == 0 and "re-run to retry" in " ".join(r.stderr.split()), r.stderr
    assert len(_jsonl(run.paths)) == 3
    data = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**data, "questions": {"source": "lab:arith", "train": 3, "dev": 0, "test": 0}}))
    r = run_cli("run", str(cfg), "--run-dir", str(tmp_path / "piped"), "--until", "filter", env={"OPENAI_API_KEY": "x"})
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 4 and "re-run to retry" in last and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "piped" / "filtered.jsonl").exists()


@pytest.mark.parametrize(("server", "needle"), [("auth", "authentication failed"), ("404", "model 'm' not found")])
def test_a_refused_key_or_model_exits_3_even_when_another_teacher_worked(tmp_path: Path, server, needle) -> None:
    reply = default_reply if server == "auth" else (lambda r: Reply(status=404))
    with ChatServer(reply=reply, api_key="the-right-key" if server == "auth" else None) as srv:
        run = _lab_run(tmp_path)
        r = run_cli("generate", str(run.root), "-c", str(_two_teachers(tmp_path, srv.base_url)),
                    env={"OPENAI_API_KEY": "a-wrong-key"})  # fmt: skip
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 3 and "teacher 'r' cannot work as configured" in last and needle in last, r.stderr
    assert len(_jsonl(run.paths)) == 3  # the synthetic teacher's paths are kept
    assert "a-wrong-key" not in r.stderr + r.stdout


# ---------------------------------------------------------------- 5. an internal error: one line and a log


def test_an_internal_error_is_one_line_and_the_traceback_is_in_the_run_logs(tmp_path: Path) -> None:
    run = _lab_run(tmp_path)
    run.config.write_text(dump_config(load_config(None, [f"{k}={json.dumps(v)}" for k, v in SYNTH.items()])))
    r = run_cli("generate", str(run.root), env={"COTDISTILL_TEST_RAISE_AT": "generate:path:2"})
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    logs = list((run.root / "logs").glob("error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in r.stderr
    text = logs[0].read_text()
    assert "Traceback" in text and "InjectedFault: injected internal error at generate:path:2" in text


# ---------------------------------------------------------------- 6, 7. validation and the real source of errors


def test_choice_questions_need_options_and_a_gold_among_them() -> None:
    q = Question(id="a", task="choice", question="Capital? (A) Berlin (B) Paris", gold="(B)")
    assert q.gold == "B"  # options in the text count; "(B)" is the letter
    assert Question(id="b", task="choice", question="Capital?", choices=["Berlin", "Paris"], gold="Paris").gold == "B"
    for bad, msg in ((dict(choices=None), "needs its options"), (dict(choices=["x"]), "2 to 10 options"),
                     (dict(choices=["x", "y"], gold="F"), "gold 'F' is not one of the 2 options")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            Question(**{"id": "c", "task": "choice", "question": "Which?", "gold": "A", **bad})


def test_a_bad_override_is_blamed_on_the_override_and_the_file_on_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: 2}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, ["train.epochs=x"])
    assert str(e.value).startswith("--set train.epochs=x: train.epochs:") and "c.yaml" not in str(e.value)
    p.write_text("train: {epochs: zero}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, ["eval.batch_size=x"])
    assert f"{p}: invalid config: train.epochs" in str(e.value) and "--set eval.batch_size=x" in str(e.value)


def test_a_utf8_bom_csv_reads_its_first_column(tmp_path: Path) -> None:
    src = tmp_path / "excel.csv"
    src.write_bytes("question,answer\n1 + 1?,2\n".encode("utf-8-sig"))
    r = run_cli("questions", "--out", str(tmp_path / "run"), "--source", f"file:{src}")
    assert r.returncode == 0, r.stderr
    assert _jsonl(tmp_path / "run" / "questions.jsonl")[0]["question"] == "1 + 1?"


def test_unknown_question_and_repeated_paths_are_counted_and_said(tmp_path: Path) -> None:
    from cotdistill.stages.generate import run_generate

    run = _lab_run(tmp_path)
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in SYNTH.items()])
    run_generate(run, cfg)
    recs = _jsonl(run.paths)
    extra = [{**recs[0], "question_id": "nobody", "id": "nobody|s1|cot|0"}, recs[1]]  # unknown + a repeated id
    run.paths.write_text("".join(json.dumps(x) + "\n" for x in recs + extra))
    run.config.write_text(dump_config(cfg))
    r = run_cli("filter", str(run.root))
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert "1 path(s) name no question of questions.jsonl" in said and "1 path(s) repeat an earlier path's id" in said
    stats = json.loads(run.filter_stats.read_text())
    assert stats["unknown_question_paths"] == 1 and stats["duplicate_paths_skipped"] == 1
    from cotdistill.training.data import load_train_data

    run.filtered.unlink()  # no filter: train reads paths.jsonl itself, and counts the same
    data = load_train_data(run)
    assert (data.unknown_question_paths, data.duplicate_paths, len(data.train_paths)) == (1, 1, 3)


def test_a_stale_filtered_file_says_re_run_filter(tmp_path: Path) -> None:
    from cotdistill.stages.filter import filter_run
    from cotdistill.stages.generate import run_generate
    from cotdistill.training.data import load_train_data

    run = _lab_run(tmp_path)
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in SYNTH.items()])
    run_generate(run, cfg)
    filter_run(run, cfg)
    assert len(load_train_data(run).train_paths) == 3
    run.paths.write_text(run.paths.read_text().replace("s1", "s2"))  # a re-import: same size, other content
    with pytest.raises(Exception, match=r"filtered.jsonl is stale: .* \(same size, other content\); re-run cotdistill"):
        load_train_data(run)


# ---------------------------------------------------------------- 8. smaller: modes, the 4.5 MB path


def test_atomically_written_files_get_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600  # a stricter umask is respected
    finally:
        os.umask(old)


def test_a_huge_expression_is_judged_in_linear_time() -> None:
    """One expression of 20,000 terms (the scans either side of '=' were quadratic: about 40 s here)."""
    from cotdistill.quality.arithmetic import arithmetic_verdict

    text = "1 + 1 = 3 + " + "2 + " * 20_000 + "2. Then 4 + 5 = 10."
    t0 = time.perf_counter()
    ok, reason = arithmetic_verdict(text)
    assert time.perf_counter() - t0 < 5
    assert not ok and reason.startswith("false calculation: 1 + 1 = 3") and "(and 1 more)" in reason


def test_the_encoder_reads_a_bounded_prefix_of_a_huge_text(tiny_encoder: Path, monkeypatch) -> None:
    """A 4.5 MB path was tokenised whole (hundreds of MB) to keep 256 tokens: now the model sees a cut text, and
    the embedding is the one of that cut text."""
    import numpy as np

    from cotdistill.embeddings import Encoder

    enc = Encoder(str(tiny_encoder))
    seen: list[int] = []
    real = enc.model.encode

    def spy(texts, **kw):
        seen.extend(len(t) for t in texts)
        return real(texts, **kw)

    monkeypatch.setattr(enc.model, "encode", spy)
    huge = "Tom has 3 apples and buys 2 more. " * 140_000
    v = enc.encode([huge])
    cap = 16 * enc.model.max_seq_length
    assert seen == [cap]
    assert np.allclose(v, enc.encode([huge[:cap]]), atol=1e-6)
