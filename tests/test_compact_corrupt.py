"""Issue 21, acceptance 1: a gold-free COMPACT down-weights a teacher that is wrong on a seeded 30% of questions.

Lab ``arith``, three fault-free synthetic teachers (``corrupt`` writes wrong answers on 30% of the questions), no
filter (every path kept), the weights from S_cons and S_PPL only (``use_mi: false``: S_MI reads the gold answer's
representation). The same harness as ``benchmarks/bench_compact_corrupt.py``, smaller: 80 questions, 3 epochs.

Measured (docs/results.md): with ``cons_projection: random`` (the default: one seeded orthogonal matrix on both
sides, i.e. a dot-product similarity in the student's space) it does; with S_cons's W_Q/W_K the student's own
attention projections the attention in-degree does not separate the corrupted rationales (it ranks a key's
salience, not agreement), so that configuration is an expected failure here.
"""

from __future__ import annotations

import argparse
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from bench_compact_corrupt import figures, train  # noqa: E402
from compact_lab import corrupted_lab_run  # noqa: E402

ARGS = argparse.Namespace(seed=0, prompt="bare", preset="tiny-gpt2", d_model=128, n_layer=2, lr=2e-3, epochs=3,
                          batch_size=24)  # fmt: skip


def corrupted_weights(tmp_path, **options) -> dict:
    data, bad = corrupted_lab_run(tmp_path / "data", train=80, test=0, corrupt_share=0.3, seed=0, consensus=False)
    opts = {"unfiltered": True, "use_mi": False, **options}
    run, summary = train(data, tmp_path / "compact", "compact", ARGS, opts)
    warm = int(0.1 * summary["total_steps"] + 0.999999)
    fig = figures(run, bad, warm)
    assert len(bad) == 24 and summary["total_steps"] == 60
    return fig


def check(fig: dict) -> None:
    bad, clean = fig["weights"]["corrupted"], fig["weights"]["clean"]
    assert bad["corrupt"] < 1 / 3, bad
    assert bad["corrupt"] < bad["clean_a"] and bad["corrupt"] < bad["clean_b"], bad
    assert all(abs(w - 1 / 3) <= 0.05 for w in clean.values()), clean


@pytest.mark.slow
def test_gold_free_compact_down_weights_the_corrupted_teacher(tmp_path):
    fig = corrupted_weights(tmp_path)  # the defaults (cons_projection: random), gold-free (use_mi: false)
    check(fig)
    # the weight follows the corruption, not the teacher: on the clean questions it gets its share back
    assert fig["weights"]["clean"]["corrupt"] - fig["weights"]["corrupted"]["corrupt"] > 0.1


@pytest.mark.slow
@pytest.mark.xfail(reason="measured: attention W_Q/W_K in-degree does not separate the corrupted rationales")
def test_gold_free_compact_with_the_students_attention_projection(tmp_path):
    check(corrupted_weights(tmp_path, cons_projection="attention"))
