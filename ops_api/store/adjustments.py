"""Four-eyes adjustment requests: recorded once per (requester, request id), decided and posted by compare-and-set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from ops_api.domain.adjustments import Adjustment, AdjustmentState
from ops_api.store.tables import adjustments


def _adjustment(row: Row[Any]) -> Adjustment:
    return Adjustment(
        adjustment_id=row.adjustment_id,
        request_id=row.request_id,
        account_number=row.account_number,
        region_code=row.region_code,
        amount_points=row.amount_points,
        reason=row.reason,
        state=AdjustmentState(row.state),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
        transfer_id=row.transfer_id,
        failure_reason=row.failure_reason,
    )


def get(conn: Connection, adjustment_id: str) -> Adjustment | None:
    row = conn.execute(select(adjustments).where(adjustments.c.adjustment_id == adjustment_id)).first()
    return None if row is None else _adjustment(row)


def get_by_request(conn: Connection, requested_by: str, request_id: str) -> Adjustment | None:
    row = conn.execute(
        select(adjustments).where(adjustments.c.requested_by == requested_by, adjustments.c.request_id == request_id)
    ).first()
    return None if row is None else _adjustment(row)


def insert_adjustment(conn: Connection, adjustment: Adjustment) -> None:
    conn.execute(
        insert(adjustments).values(
            adjustment_id=adjustment.adjustment_id,
            request_id=adjustment.request_id,
            account_number=adjustment.account_number,
            region_code=adjustment.region_code,
            amount_points=adjustment.amount_points,
            reason=adjustment.reason,
            state=adjustment.state.value,
            requested_by=adjustment.requested_by,
            requested_at=adjustment.requested_at,
        )
    )


def decide(
    conn: Connection, adjustment_id: str, state: AdjustmentState, decided_by: str, now: datetime, decision_reason: str
) -> None:
    """Moves a PENDING adjustment to `state`; an adjustment decided already stays as it is."""
    conn.execute(
        update(adjustments)
        .where(adjustments.c.adjustment_id == adjustment_id, adjustments.c.state == AdjustmentState.PENDING.value)
        .values(state=state.value, decided_by=decided_by, decided_at=now, decision_reason=decision_reason)
    )


def record_posting(conn: Connection, adjustment_id: str, transfer_id: str, posted: bool, failure_reason: str) -> None:
    """An APPROVED adjustment becomes POSTED, or FAILED with the ledger's reason."""
    conn.execute(
        update(adjustments)
        .where(adjustments.c.adjustment_id == adjustment_id, adjustments.c.state == AdjustmentState.APPROVED.value)
        .values(
            state=(AdjustmentState.POSTED if posted else AdjustmentState.FAILED).value,
            transfer_id=transfer_id,
            failure_reason=failure_reason,
        )
    )


def page(conn: Connection, state: str, account_number: str, offset: int, limit: int) -> list[Adjustment]:
    """Newest first (then by id), in one state and of one account when given."""
    query = select(adjustments).order_by(adjustments.c.requested_at.desc(), adjustments.c.adjustment_id)
    if state:
        query = query.where(adjustments.c.state == state)
    if account_number:
        query = query.where(adjustments.c.account_number == account_number)
    return [_adjustment(row) for row in conn.execute(query.offset(offset).limit(limit))]
