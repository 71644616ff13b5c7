"""The fault-test hook: with CARBON_TEST_CRASH_AT=<name>, the process dies at that named point as a power cut would
(exit code 86), so tests can prove that what was committed is finished exactly once after a restart."""

from __future__ import annotations

import os
from collections.abc import Callable

CRASH_EXIT_CODE = 86
CrashPoint = Callable[[str], None]


class _CrashAt:
    def __init__(self, crash_at: str) -> None:
        self.crash_at = crash_at

    def __call__(self, name: str) -> None:
        if name == self.crash_at:
            os._exit(CRASH_EXIT_CODE)


def crash_points(crash_at: str) -> CrashPoint:
    """The hook for the configured point ("" for none: a no-op)."""
    return _CrashAt(crash_at) if crash_at else _no_crash


def armed_at(crash_point: CrashPoint, name: str) -> bool:
    """Whether the hook dies at `name`: a point after an asynchronous call first waits for that call, so the test
    knows what the dead process had done (claims ahead the gateway holds)."""
    return isinstance(crash_point, _CrashAt) and crash_point.crash_at == name


def _no_crash(name: str) -> None:
    return None
