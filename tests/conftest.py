"""Shared fixtures: the real multi-path data beside the repo (skipped cleanly when absent)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SVAMP = SHARED / "data" / "svamp-multipath" / "train.json"


@pytest.fixture
def svamp_json() -> Path:
    """The real SVAMP multi-path file (MCC-KD format) from ../shared; skips when it is not there."""
    if not SVAMP.exists():
        pytest.skip(f"real data not available: {SVAMP} is absent (../shared is not beside this checkout)")
    return SVAMP


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cotdistill ARGS`` in a subprocess with this interpreter; returns the completed process."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cotdistill.cli", *args], capture_output=True, text=True, cwd=cwd, env=full_env
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: multi-process tests rendezvous there, so tests in parallel never collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc: int = 2) -> list[str]:
    """``torchrun --nproc_per_node N`` on a free rendezvous port, running ``cotdistill``."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(free_port()), "-m", "cotdistill.cli"]  # fmt: skip


def accelerate_launch(config: Path) -> list[str]:
    """``accelerate launch --config_file CONFIG`` on a free rendezvous port, running ``cotdistill``."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
            "--main_process_port", str(free_port()), "-m", "cotdistill.cli"]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random-weight sentence encoder (MiniLM's tokenizer and layout, 1-layer BERT): the real code path, fast."""
    from cotdistill.embeddings import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))
