"""Progress on a redirected stream: plain lines now and then (no bars, no control characters), so a long stage
run in the background shows how far it is in its log."""

from __future__ import annotations

import re

from conftest import run_cli
from cotdistill.progress import PlainBar, clock, console
from trainutil import TINY, write_config, write_succ_run


def test_training_redirected_to_a_file_logs_plain_progress_lines(tmp_path):
    run = write_succ_run(tmp_path / "run", n_train=24, n_dev=0)
    cfg = write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=8)
    r = run_cli("train", str(run), "-c", str(cfg), env={"COTDISTILL_PROGRESS_SECONDS": "0"})
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("train: ")]
    # one line per optimizer step (interval 0): 48 paths / batch 8 = 6 steps
    assert [int(re.match(r"train: (\d+)/6 ", x).group(1)) for x in lines] == [1, 2, 3, 4, 5, 6], r.stderr
    assert all(re.search(r"\(\d+%\) loss \d+\.\d{4} [\d,]+ tok/s, \d+s elapsed", x) for x in lines), lines
    assert "~0s left" in lines[-1] and "\x1b" not in r.stderr + r.stdout


def test_the_default_interval_keeps_a_short_stage_silent(tmp_path):
    run = write_succ_run(tmp_path / "run", n_train=24, n_dev=0)
    cfg = write_config(tmp_path / "c.yaml", [TINY], epochs=1, batch_size=8)
    r = run_cli("train", str(run), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert not [x for x in r.stderr.splitlines() if x.startswith("train: ") and "/6" in x]


def test_plain_bar_estimates_the_time_left_from_its_own_rate():
    bar = PlainBar("eval", 10, 0, console(), interval=0.0)
    bar._t0 -= 100.0  # 100 s for the first 4 of 10: 150 s to go
    with console().capture() as cap:
        bar.update(4, "acc 0.5")
    assert cap.get().strip() == "eval: 4/10 (40%) acc 0.5, 1m40s elapsed, ~2m30s left"
    assert (clock(42), clock(185), clock(3725)) == ("42s", "3m05s", "1h02m")
