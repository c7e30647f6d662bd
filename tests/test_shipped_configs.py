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
        rel = cell.relative_to(KEPT)
        assert rel in bench, f"{cell} is no cell of configs/real-svamp.yaml (cells: {sorted(map(str, bench))})"
        expected = bench[rel]
        assert (cell / "config.yaml").read_text(encoding="utf-8") == dump_config(expected.config), cell
        assert json.loads(stamp.read_text(encoding="utf-8"))["key"] == cell_key(run, expected.config), cell
        metrics = json.loads((cell / "eval" / "metrics.json").read_text(encoding="utf-8"))
        assert {s.name for s in expected.students} <= set(metrics["students"]), cell
    # the kept base rows' cache answers this config's base eval (bf16 is the machine's, so either value may match)
    from cotdistill.stages.eval import _base_key, eval_sets

    sets = eval_sets(run, cfg)
    for i, sc in enumerate(cfg.students):
        kept = json.loads((KEPT.parent / "eval" / "base" / f"{sc.name}.json").read_text(encoding="utf-8"))
        assert kept["key"] in {_base_key(cfg, i, sets, bf16) for bf16 in (True, False)}, sc.name


def test_keep_bench_cells_keeps_small_files_and_rewrites_weight_paths(tmp_path: Path) -> None:
    """scripts/keep_bench_cells.sh copies a finished cell's small files (no weights) and points its metrics at the
    run dir it will be restored into, taking the source run dir literally ("." is no wildcard)."""
    import subprocess

    run = tmp_path / "runs" / "a.b"
    cell = run / "bench" / "sft-single" / "s" / "seed0"
    for sub in ("stages", "eval", "logs", "students/s"):
        (cell / sub).mkdir(parents=True)
    (cell / "config.yaml").write_text("name: x\n")
    (cell / "stages" / "bench.json").write_text('{"key": "k"}')
    (cell / "eval" / "outputs.jsonl").write_text("{}\n")
    (cell / "logs" / "train_summary.json").write_text("{}")
    (cell / "students" / "s" / "adapter.safetensors").write_bytes(b"weights")
    weights = {"a": f"{run}/bench/sft-single/s/seed0/students/s", "b": f"{tmp_path}/runs/aXb/bench/other"}
    (cell / "eval" / "metrics.json").write_text(json.dumps(weights))
    (run / "eval" / "base").mkdir(parents=True)
    (run / "eval" / "base" / "s.json").write_text('{"key": "b"}')
    unfinished = run / "bench" / "compact" / "s" / "seed0" / "stages"
    unfinished.mkdir(parents=True)
    dest = tmp_path / "kept"
    done = subprocess.run(
        ["sh", str(REPO / "scripts" / "keep_bench_cells.sh"), str(dest), "runs/restored", str(run)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["kept sft-single/s/seed0", "kept eval/base"]
    assert (tmp_path / "eval" / "base" / "s.json").read_text() == '{"key": "b"}'  # beside DEST, as the docs lay it out
    kept = dest / "sft-single" / "s" / "seed0"
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files == ["config.yaml", "eval/metrics.json", "eval/outputs.jsonl", "logs/train_summary.json",
                     "stages/bench.json"]  # fmt: skip
    assert json.loads((kept / "eval" / "metrics.json").read_text()) == {
        "a": "runs/restored/bench/sft-single/s/seed0/students/s", "b": weights["b"]
    }  # fmt: skip
    assert not (dest / "compact").exists()
