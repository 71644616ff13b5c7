"""The fault-test hook: with CARBON_TEST_CRASH_AT=<name>, the process dies at that named point as a power cut would
(exit code 86), so tests can prove that what was committed is finished exactly once after a restart."""

from __future__ import annotations

import os
from collections.abc import Callable

CRASH_EXIT_CODE = 86
CrashPoint = Callable[[str], None]


def crash_points(crash_at: str) -> CrashPoint:
    """The hook for the configured point ("" for none: a no-op)."""

    def crash_point(name: str) -> None:
        if name == crash_at:
            os._exit(CRASH_EXIT_CODE)

    return crash_point if crash_at else _no_crash


def _no_crash(name: str) -> None:
    return None
