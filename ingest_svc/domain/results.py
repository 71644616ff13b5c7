"""What each submitted event is told: ACCEPTED (with points, grams and the ledger transfer id), DUPLICATE (with what
its first submission was told), or REJECTED with a reason."""

from __future__ import annotations

from typing import NamedTuple

from ingest_svc.domain.event_rows import LEDGER_FAILED, EventRow
from ingest_svc.domain.events import DUPLICATE_EVENT, new_tuple

ACCEPTED, DUPLICATE, REJECTED = "ACCEPTED", "DUPLICATE", "REJECTED"


class Result(NamedTuple):
    event_id: str
    outcome: str
    points: int = 0
    co2e_grams: int = 0
    transfer_id: str = ""
    reason: str = ""
    message: str = ""
    first_outcome: str = ""


def rejected(event_id: str, reason: str, message: str) -> Result:
    return Result(event_id, REJECTED, reason=reason, message=message)


def repeated_in_batch(event_id: str) -> Result:
    return Result(event_id, DUPLICATE, reason=DUPLICATE_EVENT, message="repeated within the batch")


def first_outcome_of(row: EventRow) -> str:
    """An accepted event's outcome as its submitter was told: REJECTED when the ledger refused its credit."""
    return REJECTED if row.status == LEDGER_FAILED else ACCEPTED


def recorded(row: EventRow) -> Result:
    """The result of an event recorded by this submission (built by position: one per accepted event)."""
    return new_tuple(
        Result,
        (
            row.event_id,
            first_outcome_of(row),
            row.points,
            row.co2e_grams,
            row.transfer_id if row.points else "",
            row.reason,
            row.message,
            "",
        ),
    )


def duplicate_of(row: EventRow) -> Result:
    """The result of an event stored by an earlier submission."""
    return Result(
        event_id=row.event_id,
        outcome=DUPLICATE,
        points=row.points,
        co2e_grams=row.co2e_grams,
        transfer_id=row.transfer_id,
        reason=DUPLICATE_EVENT,
        message=f"first accepted at {row.accepted_at.isoformat()}",
        first_outcome=first_outcome_of(row),
    )


def repeat_of(first: Result) -> Result:
    """The answer to an event that another batch of the same group carried first: what a later submission of it
    would have been told (a DUPLICATE of an accepted event, else the same answer)."""
    if first.outcome != ACCEPTED:
        return first
    return Result(
        first.event_id,
        DUPLICATE,
        first.points,
        first.co2e_grams,
        first.transfer_id,
        DUPLICATE_EVENT,
        "submitted concurrently with its first submission",
        first_outcome=ACCEPTED,
    )
