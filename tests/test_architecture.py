"""The tree's own rules and the seams between stages: size limits, one options contract, the bench/report file,
stage names on the console, and one way of answering questions for the dev check and eval."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli
from cotdistill.config import load_config
from cotdistill.rundir import RunDir
from cotdistill.training.methods import method_names, method_spec

SRC = REPO / "src" / "cotdistill"


def test_no_function_over_80_lines_and_no_module_over_400():
    too_long = []
    for f in sorted(SRC.rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_long.append(f"{f.relative_to(REPO)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    too_long.append(f"{f.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    assert too_long == []


@pytest.mark.parametrize("method", method_names())
def test_a_typo_in_any_methods_options_is_exit_2_naming_the_key(tmp_path, method):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"train: {{method: {method}, options: {{tpyo_option: 1}}}}\n")
    r = run_cli("train", str(tmp_path / "run"), "-c", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"options.tpyo_option: unknown option for method '{method}'" in line
    valid = list(method_spec(method).options.model_fields)
    assert all(k in line for k in valid)  # the method's valid keys are listed
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_every_method_option_is_in_the_config_reference():
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    for name in method_names():
        assert f"`train.options` of `{name}`" in doc
        for key in method_spec(name).options.model_fields:
            assert f"| `{key}` |" in doc, (name, key)


def _fake_cells(monkeypatch, fail_at: int | None = None) -> None:
    """Replace train and eval by fakes that write each cell's metrics (accuracy from seed and options, a no-answer
    rate); eval number ``fail_at`` (1-based) raises instead, as a bench stopped mid-way."""
    from cotdistill.stages import pipeline

    evals = [0]

    def fake(name):
        def run(run_dir, cfg):
            if name == "eval":
                evals[0] += 1
                if evals[0] == fail_at:
                    raise KeyboardInterrupt
                acc = 0.1 * (1 + cfg.seed) + 0.01 * len(cfg.train.options)
                students = {s.name: {"accuracy": acc, "no_answer_rate": 0.25} for s in cfg.students}
                run_dir.eval.mkdir(parents=True, exist_ok=True)
                run_dir.metrics.write_text(json.dumps({"split": "test", "students": students}))

        return run

    monkeypatch.setattr(pipeline, "STAGES", tuple(dataclasses.replace(s, run=fake(s.name)) for s in pipeline.STAGES))


def test_a_bench_with_ablations_renders_two_tables(tmp_path, monkeypatch):
    """The real bench writes bench.json and the real report reads it (train and eval replaced by fakes that
    write each cell's metrics): the methods and the ablations come out as two tables."""
    from cotdistill.report import write_report
    from cotdistill.stages.bench import run_bench

    _fake_cells(monkeypatch)
    tiny = {"kind": "preset", "preset": "tiny-gpt2"}
    students = f"students=[{json.dumps({'name': 'a', **tiny})}, {json.dumps({'name': 'b', **tiny})}]"
    cfg = load_config(None, [students, "eval.base=false"])
    run = RunDir.at(tmp_path / "bench").ensure()
    result = run_bench(run, cfg, [0, 1], log=lambda m: None)
    assert set(result.groups()) == {"methods", "ablations"}
    _, md_path, sections = write_report(run)
    bench = next(s for s in sections if s.key == "bench")
    tables = [p for p in bench.parts if hasattr(p, "caption") and hasattr(p, "rows")]
    assert [t.caption for t in tables] == ["methods", "ablations", "other figures (mean over seeds)"]
    assert [r[0] for r in tables[1].rows] == [
        "qr-distill w/o QF", "qr-distill w/o routing", "qr-distill random routing", "qr-distill w/o peer"
    ]  # fmt: skip
    assert tables[0].rows[0][1:] == ["15.0 ± 7.1 (10.0, 20.0)", "15.0 ± 7.1 (10.0, 20.0)"]  # seeds 0 and 1: 10% and 20%
    assert tables[2].caption == "other figures (mean over seeds)" and tables[2].rows[0] == ["sft-single", "a", "25.0"]
    assert not any("Partial" in getattr(p, "text", "") for p in bench.parts)


def test_a_stopped_bench_leaves_a_partial_table_the_report_marks(tmp_path, monkeypatch):
    """bench.json is rewritten after every cell: stopped in its third cell, it holds the first two, marked partial."""
    from cotdistill.report import write_report
    from cotdistill.results import BenchResult
    from cotdistill.stages.bench import run_bench

    _fake_cells(monkeypatch, fail_at=3)
    cfg = load_config(None, [f"students=[{json.dumps({'name': 'a', 'kind': 'preset', 'preset': 'tiny-gpt2'})}]"])
    run = RunDir.at(tmp_path / "bench").ensure()
    with pytest.raises(KeyboardInterrupt):
        run_bench(run, cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"base": False})}), [0, 1],
                  ["sft-single", "sft-multi"], log=lambda m: None)  # fmt: skip
    b = BenchResult.model_validate_json(run.bench_json.read_text(encoding="utf-8"))
    assert (b.cells_done, b.cells_total, b.partial) == (2, 4, True)
    assert [(r.method, len(r.accuracies)) for r in b.rows] == [("sft-single", 2)]
    _, _, sections = write_report(run)
    bench = next(s for s in sections if s.key == "bench")
    assert bench.parts[0].text == "Partial: 2 of 4 cells have run (the bench is running or was stopped)."


def test_the_console_of_run_shows_every_stage_by_name(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: tiny\nquestions: {source: 'lab:arith', train: 4, dev: 0, test: 2}\n"
        "teachers: [{name: t, backend: synthetic}]\ngenerate: {styles: [cot]}\n"
        "filter: {consensus: {enabled: false}}\n"
    )
    r = run_cli("run", str(cfg), "--run-dir", str(tmp_path / "run"), "--until", "filter")
    assert r.returncode == 0, r.stderr
    for stage in ("questions", "generate", "filter"):
        assert f"{stage}: running" in r.stderr and f"{stage}: done in" in r.stderr
    assert "questions.jsonl: 4 train, 2 test" in r.stderr and "kept " in r.stderr  # what each stage wrote
    assert not any(c in r.stderr + r.stdout for c in ("\r", "\x1b")), "a redirected log holds no bar controls"
    r = run_cli("run", str(cfg), "--run-dir", str(tmp_path / "run"), "--until", "filter")
    assert "questions: up to date, skipped" in r.stderr


def test_the_dev_check_and_eval_answer_with_the_same_text(tmp_path, monkeypatch):
    """One tiny student: the dev check's answers (the in-memory training student) and ``cotdistill eval`` (the
    saved student, from disk) give the same generations for the same questions, also when training autocasts in
    bf16: the dev check decodes at eval's precision (``eval.bf16``; fp32 on CPU), not training's."""
    from cotdistill.students import build_student, save_student
    from cotdistill.training import devcheck
    from cotdistill.training.data import load_train_data, tokenizer_texts
    from cotdistill.training.devcheck import dev_answers
    from cotdistill.training.student import Student
    from trainutil import TINY, write_add_run, write_config

    root = write_add_run(tmp_path / "run", n_train=8, n_dev=6)
    run = RunDir.at(root)
    overrides = ["eval.split=dev", "eval.max_new_tokens=12", "eval.base=false", "train.dev_max_new_tokens=12"]
    cfg = load_config(write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=4), overrides)
    torch.manual_seed(0)
    built = build_student(
        cfg.students[0], list(tokenizer_texts(load_train_data(run), cfg.prompt)), run.tokenizers_cache
    )
    save_student(built.model, built.tokenizer, run.students / "s")
    data = load_train_data(run)
    dev_qs = list(data.dev_questions.values())
    student = Student("s", built.model, built.tokenizer, torch.device("cpu"), bf16=True, lora=False)
    seen = []
    real = devcheck.answer_questions
    monkeypatch.setattr(devcheck, "answer_questions", lambda *a, **k: seen.append(k["bf16"]) or real(*a, **k))
    in_memory = [a.generation.text for a in dev_answers(student, data, cfg)]
    assert seen == [False]
    r = run_cli("eval", str(root), "-c", str(tmp_path / "c.yaml"), *(x for o in overrides for x in ("--set", o)))
    assert r.returncode == 0, r.stderr
    outputs = [json.loads(x) for x in run.outputs.read_text().splitlines()]
    assert [o["question_id"] for o in outputs] == [q.id for q in dev_qs]
    assert [o["text"] for o in outputs] == in_memory
    assert any(t.strip() for t in in_memory)  # an untrained student still writes something to compare


def test_stage_entry_points_take_a_run_and_a_config():
    import inspect

    from cotdistill.stages import pipeline

    for st in pipeline.STAGES:
        params = list(inspect.signature(st.run).parameters)
        assert params == ["run", "cfg"], st.name
    assert Path(SRC / "stages" / "__init__.py").exists()
