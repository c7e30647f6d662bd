"""Baseline methods' example selection, question batching through the loop, fallback and CLI errors."""

from __future__ import annotations

import json
from typing import ClassVar

from conftest import run_cli
from cotdistill.config import load_config
from cotdistill.records import ReasoningPath, load_questions, read_paths
from cotdistill.rundir import RunDir
from cotdistill.stages.train import train
from cotdistill.tasks import get_family
from cotdistill.training.methods import registry
from cotdistill.training.methods.base import Batch, Computed, StepInfo
from cotdistill.training.methods.options import SFTMultiOptions
from cotdistill.training.methods.sft import SFTMulti, SFTSingle, StepByStep
from trainutil import TINY, write_add_run, write_config


def _data(tmp_path):
    run = write_add_run(tmp_path / "run", n_train=10, n_dev=0, paths_per_q=2)
    qs = load_questions(run / "questions.jsonl")
    ps = list(read_paths(run / "filtered.jsonl"))
    ps[0].checks["kept"] = False  # q0 keeps only its second path
    return run, qs, ps


def _method(cls, tmp_path, **options):
    top = {k: options.pop(k) for k in ("prompt",) if k in options}
    overrides = [f"train.method={cls.name}", *(f"train.options.{k}={v}" for k, v in options.items())]
    cfg = load_config(None, overrides + [f"{k}={v}" for k, v in top.items()])
    return cls(cfg, [], RunDir.at(tmp_path))


def test_sft_multi_uses_every_kept_path(tmp_path):
    _, qs, ps = _data(tmp_path)
    ex = _method(SFTMulti, tmp_path).examples(qs, ps)
    assert len(ex) == 19 and all(e.path is not None and e.path.checks["kept"] for e in ex)
    assert ex[0].target == ps[1].text and ex[0].prompt == get_family("math").core_prompt(qs["q0"])  # prompt: core
    bare = _method(SFTMulti, tmp_path, prompt="bare").examples(qs, ps)
    assert bare[0].prompt == qs["q0"].question


def test_sft_single_one_path_per_question_with_filters(tmp_path):
    _, qs, ps = _data(tmp_path)
    ex = _method(SFTSingle, tmp_path).examples(qs, ps)
    assert len(ex) == 10 and len({e.question.id for e in ex}) == 10
    assert next(e for e in ex if e.question.id == "q0").path.id == ps[1].id  # first *kept* path
    assert _method(SFTSingle, tmp_path, teacher="nobody").examples(qs, ps) == []


def test_step_by_step_two_examples_per_path(tmp_path):
    _, qs, ps = _data(tmp_path)
    ex = _method(StepByStep, tmp_path, alpha=0.5).examples(qs, ps)
    assert len(ex) == 38
    answers = [e for e in ex if e.kind == "answer"]
    assert len(answers) == 19 and all(e.prompt.startswith("[answer] ") for e in answers)
    assert all(e.target == f"The answer is {e.question.gold}." for e in answers)


class _Probe(SFTMulti):
    name = "probe-question"
    batching: ClassVar = "question"

    def compute(self, batch: Batch, info: StepInfo) -> Computed:
        out = super().compute(batch, info)
        out.records = {
            "probe": [{"questions": sorted({e.question.id for e in batch.examples}), "n": len(batch.examples)}]
        }
        return out


def test_question_batching_through_the_loop(tmp_path):
    registry.register_method("probe-question", SFTMultiOptions, _Probe, "a test method")
    try:
        run = write_add_run(tmp_path / "run", n_train=9, n_dev=0, paths_per_q=2)
        cfg = load_config(write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=5, method="probe-question"))
        train(RunDir.at(run), cfg)
        recs = [json.loads(x) for x in (run / "logs" / "probe.jsonl").read_text().splitlines()]
        assert all(r["n"] == 2 * len(r["questions"]) for r in recs)  # each question's two paths together
        assert sum(len(r["questions"]) for r in recs) == 9
        assert all(r["schema_version"] == 1 and "step" in r and "epoch" in r for r in recs)
    finally:
        registry._METHODS.pop("probe-question", None)


def test_falls_back_to_paths_jsonl_and_tensorboard(tmp_path):
    run = write_add_run(tmp_path / "run", n_train=6, n_dev=0, paths_per_q=1)
    (run / "filtered.jsonl").rename(run / "paths.jsonl")
    cfg = load_config(write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=3, trackers=["tensorboard"]))
    s = train(RunDir.at(run), cfg)
    assert s["filter_ran"] is False and s["examples"] == 6
    assert any((run / "logs" / "tb").rglob("events.out.tfevents.*"))


def test_cli_reports_student_count_in_one_line(tmp_path):
    run = write_add_run(tmp_path / "run", n_train=4, n_dev=0)
    r = run_cli("train", str(run), "--method", "sft-multi")
    assert r.returncode == 2
    assert "needs 1..any student(s)" in r.stderr and "Traceback" not in r.stderr


def test_overlong_examples_are_dropped_and_counted(tmp_path):
    run = write_add_run(tmp_path / "run", n_train=6, n_dev=0, paths_per_q=1)
    long = ReasoningPath(
        id="long", question_id="q0", teacher="t", style="cot", text="1 + 1 = 2. " * 40, checks={"kept": True}
    )
    with open(run / "filtered.jsonl", "a") as f:
        f.write(long.model_dump_json() + "\n")
    cfg = load_config(write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=3, max_length=64))
    s = train(RunDir.at(run), cfg)
    assert s["dropped_overlong"] == 1 and s["examples"] == 6
