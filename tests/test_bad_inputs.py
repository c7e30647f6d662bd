"""Issue 24, the bad-input corpus: every case is a real ``cotdistill`` subprocess that must end with its documented
exit code (2 user error, 3 a stage that could do nothing, 1 an internal error), exactly one line on stderr naming
the cause, no traceback anywhere, and every file it must protect unchanged (hashed before and after).

Each case starts from a copy of a prepared run (``lab``: questions and a valid ``config.yaml``; ``paths``: plus
synthetic paths; ``filtered``: plus a filter pass), adds its own files, runs one command and compares. The table is
the list in docs/reliability.md ("The bad-input corpus").
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from cotdistill.config import dump_config, load_config
from cotdistill.rundir import RunDir
from trainutil import TINY

CONFIG = {
    "seed": 0,
    "teachers": [{"name": "s1", "backend": "synthetic"}],
    "generate": {"styles": ["cot"], "samples": 1},
    "filter": {"consensus": {"enabled": False}},
    "students": [TINY],
    "train": {"epochs": 1, "batch_size": 4, "trackers": [], "bf16": False},
    "eval": {"device": "cpu"},
}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


DOWN = f"http://127.0.0.1:{_closed_port()}/v1"
REMOTE = {"name": "r", "backend": "openai", "model": "m", "base_url": DOWN, "max_retries": 0, "timeout_s": 5}
GOOD_MCC = {"instruction": "Tom has 3 apples and buys 2. How many now?", "output": ["3 + 2 = 5."], "label": "5"}
Q = '{"question": "1 + 1?", "answer": "2"}\n'
DUP = '{"id": "a", "question": "x", "answer": "1"}\n{"id": "a", "question": "y", "answer": "2"}\n'


def _yaml(data: dict) -> str:
    return yaml.safe_dump(data)


def _safetensors_truncated(tmp: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    d = tmp / "hfmodel"
    d.mkdir()
    (d / "config.json").write_text("{}")
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(d / "model.safetensors"))
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])  # an interrupted download


def _truncated_student(tmp: Path) -> None:
    """A trained student directory whose weights were cut short (a full disk during an earlier save, a bad copy)."""
    _safetensors_truncated(tmp)
    (tmp / "run" / "students").mkdir(parents=True)
    shutil.move(tmp / "hfmodel", tmp / "run" / "students" / "s")


def _append_path(tmp: Path) -> None:
    """paths.jsonl changes after filtering (a re-import / more generation): filtered.jsonl is stale."""
    p = tmp / "run" / "paths.jsonl"
    rec = json.loads(p.read_text().splitlines()[0])
    p.write_text(p.read_text() + json.dumps({**rec, "id": rec["id"] + "-more", "sample": 9}) + "\n")


def _edit_line(rel: str, lineno: int, change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def prep(tmp: Path) -> None:
        p = tmp / rel
        lines = p.read_text().splitlines()
        lines[lineno - 1] = json.dumps(change(json.loads(lines[lineno - 1])))
        p.write_text("\n".join(lines) + "\n")

    return prep


def _every_question(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def prep(tmp: Path) -> None:
        p = tmp / "run" / "questions.jsonl"
        p.write_text("".join(json.dumps(change(json.loads(x))) + "\n" for x in p.read_text().splitlines()))

    return prep


def _duplicate_question(tmp: Path) -> None:
    p = tmp / "run" / "questions.jsonl"
    lines = [json.loads(x) for x in p.read_text().splitlines()]
    lines[1]["id"] = lines[0]["id"]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _foreign_paths(tmp: Path) -> None:
    p = tmp / "run" / "paths.jsonl"
    recs = [json.loads(x) for x in p.read_text().splitlines()]
    p.write_text("".join(json.dumps({**r, "question_id": "other-" + r["question_id"]}) + "\n" for r in recs))


@dataclass
class Case:
    """One bad input: the command (``{run}``, ``{tmp}`` filled in), what to prepare, what must come out."""

    id: str
    argv: list[str]
    needle: str | tuple[str, ...]
    code: int = 2
    base: str | None = "lab"  # the prepared run copied to {tmp}/run (None: no run directory)
    files: dict[str, str | bytes] = field(default_factory=dict)  # relative to {tmp}
    prep: Callable[[Path], None] | None = None
    allow: tuple[str, ...] = ()  # path prefixes (relative to {tmp}) that may change
    env: dict[str, str] = field(default_factory=dict)
    hold_lock: bool = False  # this test process holds the run's lock while the command runs
    needs_no_cuda: bool = False


def _cases() -> list[Case]:
    cfg_with = {**CONFIG, "teachers": [REMOTE]}
    return [
        # ---- the command line itself (typer/click usage errors: their own message, one line, exit 2)
        Case("cli-unknown-command", ["trian"], "No such command 'trian'. Did you mean 'train'?"),
        Case("cli-unknown-option", ["import", "--bogus", "x", "--out", "{run}"], "No such option: --bogus"),
        Case("cli-missing-argument", ["train"], "Missing argument"),
        Case("cli-bad-integer", ["questions", "--out", "{run}", "--train", "abc"], "'--train'"),
        Case("cli-option-needs-value", ["generate", "{run}", "--set"], "requires an argument"),
        Case("cli-fresh-and-warm", ["train", "{run}", "--fresh", "--warm-start"], "exclude each other"),
        Case("run-unknown-stage", ["run", "{tmp}/c.yaml", "--run-dir", "{tmp}/new", "--until", "bogus"],
             "unknown stage(s): bogus", base=None, files={"c.yaml": _yaml(CONFIG)}),
        Case("bench-bad-seeds", ["bench", "{tmp}/c.yaml", "--seeds", "a,b", "--run-dir", "{tmp}/new"], "--seeds",
             base=None, files={"c.yaml": _yaml(CONFIG)}),
        # ---- config files (-c)
        Case("cfg-is-directory", ["generate", "{run}", "-c", "{tmp}/adir"], "is a directory",
             prep=lambda t: (t / "adir").mkdir()),
        Case("cfg-missing", ["generate", "{run}", "-c", "{tmp}/nope.yaml"], "config file not found"),
        Case("cfg-malformed", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "b.yaml:3: malformed YAML",
             files={"b.yaml": "teachers: [\n  {name: a\n"}),
        Case("cfg-empty", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "config file is empty", files={"b.yaml": ""}),
        Case("cfg-not-mapping", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "must be a mapping",
             files={"b.yaml": "- 1\n- 2\n"}),
        Case("cfg-not-utf8", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "not valid UTF-8",
             files={"b.yaml": b"name: caf\xe9\n"}),
        Case("cfg-unknown-method", ["train", "{run}", "-c", "{tmp}/b.yaml"], ("b.yaml", "unknown method 'magic'"),
             files={"b.yaml": "train: {method: magic}\n"}),
        Case("cfg-several-bad-fields", ["generate", "{run}", "-c", "{tmp}/b.yaml"],
             ("train.epochs", "train.batch_size", "train.lr_typo"),
             files={"b.yaml": "train: {epochs: 0, batch_size: -1, lr_typo: 3}\n"}),
        Case("cfg-unknown-backend", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "teachers.0.backend",
             files={"b.yaml": "teachers: [{name: a, backend: carrier-pigeon}]\n"}),
        Case("cfg-duplicate-teachers", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "teacher names must be unique",
             files={"b.yaml": "teachers: [{name: a}, {name: a}]\n"}),
        Case("cfg-duplicate-students", ["train", "{run}", "-c", "{tmp}/b.yaml"], "student names must be unique",
             files={"b.yaml": "students: [{name: s}, {name: s}]\n"}),
        Case("cfg-judge-names-nobody", ["filter", "{run}", "-c", "{tmp}/b.yaml"], "filter.judge.teacher 'nobody'",
             files={"b.yaml": "filter: {judge: {kind: llm, teacher: nobody}}\n"}),
        Case("cfg-literal-key", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "'api_key' must not hold a secret",
             files={"b.yaml": "teachers: [{name: a, backend: openai, model: m, api_key: sk-abcdefghijkl}]\n"}),
        Case("cfg-unknown-section", ["generate", "{run}", "-c", "{tmp}/b.yaml"], "unknown_section: unknown field",
             files={"b.yaml": "unknown_section: {a: 1}\n"}),
        Case("cfg-option-typo", ["train", "{run}", "-c", "{tmp}/b.yaml"], "options.tpyo: unknown option",
             files={"b.yaml": "train: {method: sft-multi, options: {tpyo: 1}}\n"}),
        # ---- --set overrides: blamed on the override, RUN/config.yaml kept byte for byte
        Case("set-bad-value", ["generate", "{run}", "--set", "train.epochs=x"], "--set train.epochs=x: train.epochs"),
        Case("set-unknown-field", ["generate", "{run}", "--set", "train.colour=red"],
             "--set train.colour=red: train.colour: unknown field"),
        Case("set-no-equals", ["generate", "{run}", "--set", "train.epochs"], "must look like key.path=value"),
        Case("set-missing-list-item", ["generate", "{run}", "--set", "teachers.5.model=x"], "does not address"),
        Case("set-unknown-style", ["generate", "{run}", "--set", "generate.styles=[bogus]"], "bogus"),
        Case("flag-unknown-method", ["train", "{run}", "--method", "telepathy"],
             "--method telepathy: train.method: unknown method 'telepathy'"),
        Case("set-judge-teacher-nobody", ["filter", "{run}", "--set", "filter.judge.kind=llm"],
             ("--set filter.judge.kind=llm", "filter.judge.teacher")),
        # ---- questions
        Case("q-file-empty-spec", ["questions", "--out", "{run}", "--source", "file:"], "names no file"),
        Case("q-file-is-directory", ["questions", "--out", "{run}", "--source", "file:{tmp}/d.jsonl"],
             "is a directory", prep=lambda t: (t / "d.jsonl").mkdir()),
        Case("q-negative-count", ["questions", "--out", "{run}", "--source", "lab:arith", "--train", "-5"],
             "--train -5: Input should be greater than or equal to 0"),
        Case("q-task-flag", ["questions", "--out", "{run}", "--source", "file:{tmp}/q.jsonl", "--task", "bogus"],
             "--task: unknown task family 'bogus'", files={"q.jsonl": Q}),
        Case("q-choice-without-choices", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"],
             ("q.jsonl:1:", "'choices'", "needs its options"),
             files={"q.jsonl": '{"question": "Which?", "answer": "A", "task": "choice"}\n'}),
        Case("q-gold-beyond-options", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"],
             ("q.jsonl:1:", "gold 'F' is not one of the 2 options (A-B)"),
             files={"q.jsonl": '{"question": "Which?", "answer": "F", "choices": ["x", "y"], "task": "choice"}\n'}),
        Case("q-duplicate-id", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"],
             ("q.jsonl:2:", "duplicate id 'a'"),
             files={"q.jsonl": DUP}),
        Case("q-malformed-line", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"],
             ("q.jsonl:2:", "malformed JSON"), files={"q.jsonl": Q + '{"question": "2?" "answer": "4"}\n'}),
        Case("q-missing-gold", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"],
             ("q.jsonl:2:", "'answer'", "missing required field"), files={"q.jsonl": Q + '{"question": "2?"}\n'}),
        Case("q-unknown-task-in-row", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"],
             ("q.jsonl:1:", "unknown task family 'poetry'"),
             files={"q.jsonl": '{"question": "q", "answer": "4", "task": "poetry"}\n'}),
        Case("q-unknown-source", ["questions", "--out", "{run}", "--source", "{tmp}/q.txt"], "unknown question source"),
        Case("q-not-utf8", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"], ("q.jsonl:2:", "UTF-8"),
             files={"q.jsonl": Q.encode() + '{"question": "café?", "answer": "1"}\n'.encode("latin-1")}),
        Case("q-csv-surplus-values", ["questions", "--out", "{run}", "--source", "{tmp}/q.csv"],
             ("q.csv:3:", "more values than the 2 header columns"),
             files={"q.csv": 'question,answer\n1 + 1?,2\n"2 + 2?",4,surplus\n'}),
        Case("q-empty-file", ["questions", "--out", "{run}", "--source", "{tmp}/q.jsonl"], "empty",
             files={"q.jsonl": ""}),
        Case("q-file-not-found", ["questions", "--out", "{run}", "--source", "{tmp}/none.jsonl"], "not found"),
        # ---- import
        Case("imp-malformed-json", ["import", "mcc-kd", "{tmp}/m.json", "--out", "{run}"], "malformed JSON",
             files={"m.json": '[{"instruction": "a" "label": 2}]'}),
        Case("imp-missing-label", ["import", "mcc-kd", "{tmp}/m.json", "--out", "{run}"], "'label'",
             files={"m.json": json.dumps([{"instruction": "a", "output": ["x"]}])}),
        Case("imp-empty-array", ["import", "mcc-kd", "{tmp}/m.json", "--out", "{run}"], "no questions",
             files={"m.json": "[]"}),
        Case("imp-unknown-format", ["import", "gsm-magic", "{tmp}/m.json", "--out", "{run}"],
             "unknown import format 'gsm-magic'", files={"m.json": json.dumps([GOOD_MCC])}),
        Case("imp-task-flag", ["import", "mcc-kd", "{tmp}/m.json", "--out", "{run}", "--task", "bogus"],
             "--task: unknown task family 'bogus'", files={"m.json": json.dumps([GOOD_MCC])}),
        Case("imp-unknown-dataset", ["import", "qr-distill", "{tmp}/x.enriched.jsonl", "--out", "{run}"],
             ("x.enriched.jsonl:1:", "'dataset'", "unknown dataset 'entailment_bank'"),
             files={"x.enriched.jsonl": json.dumps({"gold_answer": "entailment", "responses": ["so entailment"],
                                                    "question": "q", "dataset": "entailment_bank"})}),
        Case("imp-missing-file", ["import", "mcc-kd", "{tmp}/none.json", "--out", "{run}"], "not found"),
        Case("imp-source-is-directory", ["import", "mcc-kd", "{tmp}/d.json", "--out", "{run}"], "is a directory",
             prep=lambda t: (t / "d.json").mkdir()),
        # ---- inspect (reads every record: whatever it names is validated)
        Case("insp-missing-run", ["inspect", "{tmp}/nowhere"], "not found"),
        Case("insp-bad-path-line", ["inspect", "{run}"], ("paths.jsonl:2:", "'sample'"), base="paths",
             prep=_edit_line("run/paths.jsonl", 2, lambda d: {**d, "sample": "first"})),
        Case("insp-duplicate-question", ["inspect", "{run}"], ("questions.jsonl:2:", "(first on line 1)"),
             base="paths", prep=_duplicate_question),
        Case("insp-choice-gold-beyond", ["inspect", "{run}"], ("questions.jsonl:1:", "'gold'", "gold 'F'"),
             base="paths", prep=_edit_line("run/questions.jsonl", 1,
                                           lambda d: {**d, "task": "choice", "choices": ["x", "y"], "gold": "F"})),
        # ---- generate
        Case("gen-no-questions", ["generate", "{tmp}/empty", "-c", "{tmp}/c.yaml"], "questions.jsonl: not found",
             base=None, files={"c.yaml": _yaml(CONFIG)}, prep=lambda t: (t / "empty").mkdir(),
             allow=("empty/config.yaml",)),
        Case("gen-no-teachers", ["generate", "{run}", "--set", "teachers=[]"], "no teachers configured"),
        Case("gen-missing-key-variable", ["generate", "{run}", "-c", "{tmp}/k.yaml"], "COTD_UNSET_KEY is not set",
             files={"k.yaml": _yaml({**cfg_with, "teachers": [{**REMOTE, "api_key_env": "COTD_UNSET_KEY"}]})}),
        Case("gen-server-down", ["generate", "{run}", "-c", "{tmp}/d.yaml"], ("every request failed",
             f"connection refused by {DOWN}"), code=3, files={"d.yaml": _yaml(cfg_with)},
             env={"OPENAI_API_KEY": "unused"}, allow=("run/config.yaml", "run/logs/", "run/cache/")),
        Case("gen-synthetic-on-foreign-questions", ["generate", "{run}"], ("every request failed", "teacher 's1'"),
             code=3, prep=_every_question(lambda d: {**d, "metadata": {}, "source": "file:mine.jsonl"}),
             allow=("run/logs/", "run/cache/")),
        Case("gen-huge-line-wrong-type", ["generate", "{run}"], ("questions.jsonl:1:", "'gold'"),
             prep=_edit_line("run/questions.jsonl", 1, lambda d: {**d, "question": "x" * 5_000_000, "gold": 12345})),
        # ---- filter
        Case("filt-truncated-line", ["filter", "{run}"], "paths.jsonl:1", base="paths",
             files={"run/paths.jsonl": '{"schema_version": 1, "id": "x"'}),
        Case("filt-no-paths", ["filter", "{run}"], ("paths.jsonl", "not found")),
        Case("filt-paths-of-another-run", ["filter", "{run}"], "no path belongs to a question", base="paths",
             prep=_foreign_paths),
        Case("filt-judge-server-down", ["filter", "{run}", "-c", "{tmp}/j.yaml"],
             ("LLM judge cannot be reached", f"connection refused by {DOWN}"), code=3, base="paths",
             files={"j.yaml": _yaml({**CONFIG, "teachers": [REMOTE], "filter": {"consensus": {"enabled": False},
                                     "judge": {"kind": "llm", "teacher": "r"}}})},
             env={"OPENAI_API_KEY": "unused"}, allow=("run/config.yaml", "run/cache/")),
        Case("filt-consensus-on-missing-cuda", ["filter", "{run}", "--set", "filter.consensus.enabled=true", "--set",
             "filter.consensus.device=cuda"], "filter.consensus.device: 'cuda' but CUDA is not available",
             base="paths", needs_no_cuda=True),
        # ---- train
        Case("train-no-students", ["train", "{run}", "--set", "students=[]"], "students list, got 0"),
        Case("train-hf-empty-dir", ["train", "{run}", "--set", "students=[{name: h, kind: hf, path: {tmp}/e}]"],
             ("students: 'h'", "no config.json"), prep=lambda t: (t / "e").mkdir()),
        Case("train-gguf-is-text", ["train", "{run}", "--set", "students=[{name: g, kind: gguf, path: {tmp}/m.gguf}]"],
             "not a GGUF file", files={"m.gguf": "just some text\n"}),
        Case("train-truncated-safetensors", ["train", "{run}", "--set",
             "students=[{name: h, kind: hf, path: {tmp}/hfmodel}]"], ("model.safetensors", "truncated"),
             prep=_safetensors_truncated),
        Case("train-stale-filtered", ["train", "{run}"], ("filtered.jsonl is stale", "re-run cotdistill filter"),
             base="filtered", prep=_append_path, allow=("run/cache/",)),
        Case("train-warm-start-without-checkpoint", ["train", "{run}", "--warm-start"], "--warm-start: no checkpoint",
             base="filtered", allow=("run/cache/",)),
        # ---- eval and report
        Case("eval-cuda-missing", ["eval", "{run}", "--set", "eval.device=cuda"], "eval.device: 'cuda' but CUDA",
             needs_no_cuda=True),
        Case("eval-unknown-device", ["eval", "{run}", "--set", "eval.device=quantum"], "unknown device 'quantum'"),
        Case("eval-no-student", ["eval", "{run}"], "no trained student found"),
        Case("eval-truncated-student", ["eval", "{run}"], ("students/s/model.safetensors", "truncated"),
             prep=_truncated_student),
        Case("report-missing-run", ["report", "{tmp}/nowhere"], "run directory not found"),
        Case("report-while-locked", ["report", "{run}"], "is in use by", hold_lock=True),
        # ---- internal errors: one line and a log with the traceback (exit 1)
        Case("internal-no-run", ["inspect", "{run}"], ("internal error (InjectedFault", "the traceback is in"), code=1,
             env={"COTDISTILL_TEST_RAISE_AT": "cli:start", "TMPDIR": "{tmp}/tmpdir"},
             prep=lambda t: (t / "tmpdir").mkdir(), allow=("tmpdir/",)),
        Case("internal-in-a-run", ["generate", "{run}"], ("internal error", "/run/logs/error-"), code=1,
             env={"COTDISTILL_TEST_RAISE_AT": "generate:path:1"}, allow=("run/paths.jsonl", "run/logs/")),
    ]  # fmt: skip


CASES = _cases()


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """The prepared runs, built once in-process: ``lab`` (8 lab questions, a valid config.yaml), ``paths`` (plus
    synthetic paths), ``filtered`` (plus a filter pass)."""
    from cotdistill.stages.filter import filter_run
    from cotdistill.stages.generate import run_generate
    from cotdistill.stages.questions import write_questions

    root = tmp_path_factory.mktemp("bases")
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in CONFIG.items()])
    cfg.questions = cfg.questions.model_copy(update={"source": "lab:arith", "train": 4, "dev": 2, "test": 2})
    lab = RunDir.at(root / "lab").ensure()
    write_questions(lab, cfg)
    lab.config.write_text(dump_config(cfg))
    shutil.copytree(lab.root, root / "paths")
    run_generate(RunDir.at(root / "paths"), cfg)
    shutil.copytree(root / "paths", root / "filtered")
    filter_run(RunDir.at(root / "filtered"), cfg)
    return {"lab": lab.root, "paths": root / "paths", "filtered": root / "filtered"}


def _snapshot(root: Path, allow: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file() and not rel.startswith(allow):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_the_corpus_is_large_and_each_case_is_named_once() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


def test_every_case_is_in_the_docs() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert [c.id for c in CASES if f"| `{c.id}` |" not in doc] == []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input(case: Case, bases: dict[str, Path], tmp_path: Path) -> None:
    if case.needs_no_cuda:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: the case needs one without")
    run = tmp_path / "run"
    if case.base:
        shutil.copytree(bases[case.base], run)
    for rel, content in case.files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.prep:
        case.prep(tmp_path)
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in case.argv]
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()}
    before = _snapshot(tmp_path, case.allow)
    lock_fd = None
    if case.hold_lock:
        lock_fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        r = run_cli(*argv, env=env)
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
            (run / ".lock").unlink()
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    err = r.stderr.strip()
    assert r.returncode == case.code, (r.returncode, r.stdout[-2000:], err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err[-3000:]
    for needle in (case.needle,) if isinstance(case.needle, str) else case.needle:
        assert needle in err, (needle, err)
    assert _snapshot(tmp_path, case.allow) == before  # nothing it must protect changed (config.yaml included)
