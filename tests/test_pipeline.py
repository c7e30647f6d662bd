"""The stage runner: skips current stages, re-runs stale ones and their dependants, clears changed outputs."""

from __future__ import annotations

import dataclasses

import pytest

from cotdistill.config import load_config
from cotdistill.errors import CotdistillError
from cotdistill.rundir import RunDir
from cotdistill.stages import pipeline


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace every stage's work with a recorder that writes a marker output."""
    calls: list[str] = []

    def runner(name):
        def run(run_dir, cfg):
            calls.append(name)
            (run_dir.root / f"{name}.out").write_text(name)

        return run

    stages = tuple(dataclasses.replace(s, run=runner(s.name), resets=(f"{s.name}.out",)) for s in pipeline.STAGES)
    monkeypatch.setattr(pipeline, "STAGES", stages)
    return calls


def test_second_run_skips_everything(tmp_path, fake_stages):
    run, cfg = RunDir.at(tmp_path).ensure(), load_config(None)
    first = pipeline.run_pipeline(run, cfg, log=lambda m: None)
    assert set(first.values()) == {"ran"}
    fake_stages.clear()
    second = pipeline.run_pipeline(run, cfg, log=lambda m: None)
    assert set(second.values()) == {"skipped"} and fake_stages == []


def test_changed_section_reruns_that_stage_and_dependants_only(tmp_path, fake_stages):
    run = RunDir.at(tmp_path).ensure()
    pipeline.run_pipeline(run, load_config(None), log=lambda m: None)
    fake_stages.clear()
    pipeline.run_pipeline(run, load_config(None, ["eval.max_new_tokens=7"]), log=lambda m: None)
    assert fake_stages == ["eval", "report"]
    fake_stages.clear()
    pipeline.run_pipeline(run, load_config(None, ["train.epochs=9"]), log=lambda m: None)
    assert fake_stages == ["train", "eval", "report"]


def test_interrupted_stage_with_other_inputs_is_cleared_not_resumed(tmp_path, fake_stages, monkeypatch):
    run = RunDir.at(tmp_path).ensure()
    cfg = load_config(None)
    pipeline.run_pipeline(run, cfg, until="filter", log=lambda m: None)
    # an attempt at train that died half-way, with inputs that are no longer current
    (run.root / "stages" / "train.started").write_text("0123456789abcdef")
    (run.root / "train.out").write_text("stale half-written")
    cleared = []
    orig = pipeline._begin

    def spy(run_dir, st, fp, forced, log):
        before = (run_dir.root / "train.out").exists()
        orig(run_dir, st, fp, forced, log)
        if st.name == "train":
            cleared.append(before and not (run_dir.root / "train.out").exists())

    monkeypatch.setattr(pipeline, "_begin", spy)
    pipeline.run_pipeline(run, cfg, log=lambda m: None)
    assert cleared == [True]
    assert (run.root / "train.out").read_text() == "train"


def test_force_and_until(tmp_path, fake_stages):
    run, cfg = RunDir.at(tmp_path).ensure(), load_config(None)
    pipeline.run_pipeline(run, cfg, until="generate", log=lambda m: None)
    assert fake_stages == ["questions", "generate"]
    fake_stages.clear()
    pipeline.run_pipeline(run, cfg, force=("generate",), log=lambda m: None)
    assert fake_stages == ["generate", "filter", "train", "eval", "report"]
    with pytest.raises(CotdistillError, match="unknown stage"):
        pipeline.run_pipeline(run, cfg, force=("nope",), log=lambda m: None)
