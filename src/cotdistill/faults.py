"""Test-only crash points: ``COTDISTILL_TEST_SIGKILL_AT=<point>`` SIGKILLs the process when it reaches that point.

The crash-anywhere tests use it to kill a stage at a chosen place (not at a racy wall-clock moment) and check that
a resumed run gives the same artifacts. Unset (always, outside tests) it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "COTDISTILL_TEST_SIGKILL_AT"


def maybe_kill(point: str) -> None:
    """SIGKILL this process if the test asked to die at ``point``."""
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
