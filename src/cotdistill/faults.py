"""Test-only fault points: ``COTDISTILL_TEST_SIGKILL_AT=<point>`` SIGKILLs the process when it reaches that point,
``COTDISTILL_TEST_RAISE_AT=<point>`` raises an unexpected exception there (an internal error, as a bug would).

The crash-anywhere tests use them to kill a stage at a chosen place (not at a racy wall-clock moment) and check that
a resumed run gives the same artifacts, or that a bug is reported as one line plus a log. Unset (always, outside
tests) they cost two environment lookups.
"""

from __future__ import annotations

import os
import signal

ENV = "COTDISTILL_TEST_SIGKILL_AT"
RAISE_ENV = "COTDISTILL_TEST_RAISE_AT"


class InjectedFault(RuntimeError):
    """The unexpected exception ``COTDISTILL_TEST_RAISE_AT`` raises (never raised outside tests)."""


def maybe_kill(point: str) -> None:
    """SIGKILL this process, or raise :class:`InjectedFault`, if the test asked for it at ``point``."""
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(RAISE_ENV) == point:
        raise InjectedFault(f"injected internal error at {point}")
