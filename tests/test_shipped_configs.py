"""Every config the repository ships loads and validates: a README or docs command that names one must not fail
on a stale field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotdistill.config import load_config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "src" / "cotdistill" / "configs").glob("*.yaml"))


def test_there_are_shipped_configs() -> None:
    assert len(SHIPPED) >= 4


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name
    assert cfg.questions.source  # configs/lab.yaml is data-only: no students


KEPT = REPO / "docs" / "results" / "real-svamp" / "bench"


def test_the_kept_real_bench_cells_are_cells_of_the_shipped_config(svamp_json: Path, tmp_path: Path) -> None:
    """docs/results.md's real table is read from docs/results/real-svamp: every kept cell must be the cell that
    configs/real-svamp.yaml trains on the real data now (same config, same stamp key), or the table is stale and a
    bench given those files would skip cells it should train."""
    from cotdistill.rundir import RunDir
    from cotdistill.sources.importers import ImportOptions, run_import
    from cotdistill.stages.bench import bench_cells, cell_key, dump_config
    from cotdistill.stages.pipeline import run_pipeline

    dev = svamp_json.parents[1] / "mcckd-dev" / "svamp-dev.json"
    if not dev.exists():
        pytest.skip(f"real data not available: {dev} is absent")
    run = RunDir.at(tmp_path / "run")
    run_import("mcc-kd", svamp_json, run.root, ImportOptions(teacher="gpt"))
    run_import("mcc-kd", dev, run.root, ImportOptions(split="test", append=True))
    cfg = load_config(REPO / "configs" / "real-svamp.yaml")
    run_pipeline(run, cfg, until="filter", log=lambda _: None)
    seeds = sorted({int(p.name.removeprefix("seed")) for p in KEPT.glob("*/*/seed*")})
    bench = {c.rundir(run).root.relative_to(run.root / "bench"): c for c in bench_cells(cfg, seeds)}
    stamps = sorted(KEPT.glob("*/*/seed*/stages/bench.json"))
    assert stamps
    for stamp in stamps:
        cell = stamp.parents[1]
        expected = bench[cell.relative_to(KEPT)]  # a KeyError: a kept dir that is no cell of the config
        assert (cell / "config.yaml").read_text(encoding="utf-8") == dump_config(expected.config), cell
        assert json.loads(stamp.read_text(encoding="utf-8"))["key"] == cell_key(run, expected.config), cell
        metrics = json.loads((cell / "eval" / "metrics.json").read_text(encoding="utf-8"))
        assert {s.name for s in expected.students} <= set(metrics["students"]), cell
