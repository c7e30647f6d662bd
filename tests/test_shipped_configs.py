"""Every config the repository ships loads and validates: a README or docs command that names one must not fail
on a stale field."""

from __future__ import annotations

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
