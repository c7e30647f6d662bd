"""Issue 24, item 1: training resumes only from a checkpoint made from the same run.

Change the data, the students, the method or the schedule between two ``train`` calls and the second never loads
the old checkpoint: it says in one line what changed and starts fresh (a full, consistent schedule from step 0),
or with ``--warm-start`` keeps the weights and starts a new schedule. A kill and resume leaves TensorBoard with
every step once.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from cotdistill.config import load_config
from cotdistill.errors import CotdistillError
from cotdistill.rundir import RunDir
from cotdistill.stages.train import train
from trainutil import TINY, write_add_run, write_config

BASE = {"epochs": 2, "batch_size": 5, "checkpoint_every": 4, "keep_checkpoints": 3}  # 8 steps per epoch


def _cfg(path: Path, students: list[dict] | None = None, **train_opts: object):
    return load_config(write_config(path, students or [TINY], **{**BASE, **train_opts}))


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "logs" / "train_metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, dict]:
    """A finished 2-epoch run with its checkpoints (the newest is step-00000016)."""
    run = write_add_run(tmp_path / "run", n_train=40, n_dev=4, paths_per_q=1)
    summary = train(RunDir.at(run), _cfg(tmp_path / "c.yaml"))
    assert summary["steps"] == 16 and (run / "checkpoints" / "step-00000016").is_dir()
    return run, summary


def _fresh_and_consistent(run: Path, summary: dict, capsys, *needles: str) -> None:
    """Not resumed; a note says what changed; the logs hold exactly this run's schedule, from step 0."""
    assert summary["resumed_from"] is None, summary
    assert all(n in summary["fresh_start"] for n in needles), summary["fresh_start"]
    notes = [ln for ln in capsys.readouterr().out.splitlines() if "starting fresh" in ln]
    assert len(notes) == 1 and "does not match this run" in notes[0], notes
    steps = [m["step"] for m in _metrics(run)]
    assert steps == list(range(summary["total_steps"])) and summary["steps"] == summary["total_steps"]
    assert {p.name for p in (run / "checkpoints").iterdir()} <= {f"step-{k:08d}" for k in range(1, 100)}


def test_changed_data_starts_fresh(tmp_path: Path, trained, capsys) -> None:
    """The issue's case: paths cut to a third and re-filtered; it resumed at step 78 of 34 with the old students."""
    run, _ = trained
    lines = (run / "filtered.jsonl").read_text().splitlines()
    (run / "filtered.jsonl").write_text("\n".join(lines[:14] + lines[40:]) + "\n")  # 14 of 40 train paths + dev
    capsys.readouterr()
    summary = train(RunDir.at(run), _cfg(tmp_path / "c.yaml"))
    _fresh_and_consistent(run, summary, capsys, "training examples (40 then, 14 now)")
    assert summary["total_steps"] == 2 * 3  # ceil(14 / 5) steps per epoch: the schedule of the data it has


def test_changed_students_start_fresh(tmp_path: Path, trained, capsys) -> None:
    run, _ = trained
    capsys.readouterr()
    summary = train(RunDir.at(run), _cfg(tmp_path / "c.yaml", [{**TINY, "lr": 3e-3}]))
    _fresh_and_consistent(run, summary, capsys, "the students")


def test_changed_method_starts_fresh(tmp_path: Path, trained, capsys) -> None:
    run, _ = trained
    capsys.readouterr()
    summary = train(RunDir.at(run), _cfg(tmp_path / "c.yaml", method="sft-single"))
    _fresh_and_consistent(run, summary, capsys, "train.method (sft-multi then, sft-single now)")


def test_more_epochs_is_a_fresh_full_schedule_not_a_restart_mid_run(tmp_path: Path, trained, capsys) -> None:
    """More epochs: a fresh start whose learning rate warms up once, from step 0, over 24 steps (it ran 95 of 51
    steps with the lr climbing from 0 back to its peak)."""
    run, first = trained
    capsys.readouterr()
    summary = train(RunDir.at(run), _cfg(tmp_path / "c.yaml", epochs=3))
    _fresh_and_consistent(run, summary, capsys, "train.epochs (2 then, 3 now)")
    lrs = [m["lr"]["s"] for m in _metrics(run)]
    assert len(lrs) == 24 and lrs.index(max(lrs)) < 3  # one warm-up at the start, then only down
    assert all(b <= a + 1e-12 for a, b in zip(lrs[lrs.index(max(lrs)) :], lrs[lrs.index(max(lrs)) + 1 :], strict=False))


def test_warm_start_keeps_the_weights_and_starts_a_new_schedule(tmp_path: Path, trained) -> None:
    run, first = trained
    before = [x["losses"]["total"] for x in _metrics(run)]
    summary = train(RunDir.at(run), _cfg(tmp_path / "c.yaml", epochs=1), warm_start=True)
    assert summary["warm_start_from"] == "step-00000016" and summary["resumed_from"] is None
    m = _metrics(run)
    assert [x["step"] for x in m] == list(range(8)) and summary["total_steps"] == 8
    # the trained weights, not a fresh init: it starts where the first run ended (its last epoch), not at its start
    warm = m[0]["losses"]["total"]
    assert warm < before[0] - 0.2 and warm <= 1.05 * max(before[8:]), (warm, before)
    with pytest.raises(CotdistillError, match="--warm-start: checkpoint .* other students"):
        train(RunDir.at(run), _cfg(tmp_path / "c.yaml", [{**TINY, "size": {**TINY["size"], "d_model": 64}}]),
              warm_start=True)  # fmt: skip


def _event_steps(tb: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for f in sorted(tb.rglob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            steps += [ev.step for v in ev.summary.value if v.tag == tag]
    return sorted(steps)


def test_tensorboard_shows_every_step_once_after_a_kill_and_resume(tmp_path: Path) -> None:
    run = write_add_run(tmp_path / "run", n_train=40, n_dev=4, paths_per_q=1)
    cfg = write_config(tmp_path / "c.yaml", [TINY], **BASE, trackers=["tensorboard"])
    r = run_cli("train", str(run), "-c", str(cfg), env={"COTDISTILL_TEST_SIGKILL_AT_STEP": "6"})
    assert r.returncode == -signal.SIGKILL
    assert _event_steps(run / "logs" / "tb", "loss/total")[-1] >= 5  # steps 4 and 5 were logged after step-4
    r = run_cli("train", str(run), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "logs" / "train_summary.json").read_text())["resumed_from"] == "step-00000004"
    assert "note: resuming from checkpoint step-00000004 of 16 steps" in r.stdout + r.stderr
    assert _event_steps(run / "logs" / "tb", "loss/total") == list(range(16))  # each once, none twice


def test_the_cli_says_what_changed_in_one_line(tmp_path: Path) -> None:
    run = write_add_run(tmp_path / "run", n_train=20, n_dev=2, paths_per_q=1)
    cfg = write_config(tmp_path / "c.yaml", [TINY], **{**BASE, "epochs": 1})
    assert run_cli("train", str(run), "-c", str(cfg)).returncode == 0
    r = run_cli("train", str(run), "--set", "train.batch_size=4")
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stdout.splitlines() if ln.startswith("note: checkpoint")]
    assert len(notes) == 1 and "train.batch_size (5 then, 4 now)" in notes[0] and "starting fresh" in notes[0]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"] == 4
