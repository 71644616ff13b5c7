"""Crash points: named steps of redeem and cancel where a test makes the process die (CARBON_TEST_CRASH_AT), to
prove that recovery finishes what a kill at that step left halfway."""

from __future__ import annotations

from collections.abc import Callable

# Called with a step name: "after_hold", "after_vouchers", "after_cancel_claim".
Checkpoint = Callable[[str], None]


def no_checkpoint(_step: str) -> None:
    return None
