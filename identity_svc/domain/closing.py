"""Closing an account (PIPL right to erasure): which accounts may close, and what must happen to their points."""

from __future__ import annotations

from enum import IntEnum

from identity_svc.domain.accounts import AccountState
from service_kit.errors import FailedPrecondition, InvalidArgument

# Who records the revocations that closing writes for consents still in force.
CLOSED_BY = "account-closure"


class PointsDisposition(IntEnum):
    """Mirrors carbon.identity.v1.PointsDisposition."""

    UNSPECIFIED = 0
    DONATE = 1
    FORFEIT = 2
    NONE = 3


class ClosureState:
    """A closure is PENDING while its points are being moved, then DONE (erased) or FAILED (the account reopened)."""

    PENDING = "PENDING"
    DONE = "DONE"
    FAILED = "FAILED"


def validate_disposition(value: int) -> PointsDisposition:
    if value not in PointsDisposition._value2member_map_:
        raise InvalidArgument("points_disposition", "must be a known disposition", reason="INVALID_DISPOSITION")
    return PointsDisposition(value)


def require_open(state: int) -> None:
    """Only an open account can start closing; a second close request waits for the first one's answer."""
    if state == AccountState.CLOSED:
        raise FailedPrecondition("ACCOUNT_CLOSED", "the account is already closed")
    if state == AccountState.CLOSING:
        raise FailedPrecondition("ACCOUNT_CLOSING", "another close request for this account is in progress")


def disposable_points(available_points: int, held_points: int, disposition: PointsDisposition) -> int:
    """The points closing moves off the account; refused while a redemption holds some, or when points remain and
    the resident chose neither to donate nor to forfeit them."""
    if held_points > 0:
        raise FailedPrecondition(
            "POINTS_HELD", "points are held by a redemption in progress", {"held_points": held_points}
        )
    amount = max(available_points, 0)
    if amount > 0 and disposition not in (PointsDisposition.DONATE, PointsDisposition.FORFEIT):
        raise FailedPrecondition(
            "POINTS_DISPOSITION_REQUIRED",
            "points remain: choose POINTS_DISPOSITION_DONATE or POINTS_DISPOSITION_FORFEIT",
            {"available_points": amount},
        )
    return amount


def closing_transfer_id(request_id: str) -> str:
    """The ledger transfer that moves the points: derived from the request id, so a retry re-posts the same one."""
    return f"identity-close:{request_id}"
