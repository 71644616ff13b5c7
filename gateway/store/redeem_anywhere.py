"""Redeem-anywhere requests in xr_redeem_anywhere: recorded once, then moved step by step by compare-and-set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gateway.domain.redeem_anywhere import RedeemAnywhere, RedeemAnywhereRequest, RedeemAnywhereState
from gateway.store.tables import redeem_anywhere


def insert_redeem_anywhere(
    conn: Connection, item: RedeemAnywhere, lease_until: datetime, lease_owner: str | None = None
) -> None:
    """Raises IntegrityError when the request id exists (the caller re-reads and compares fingerprints)."""
    conn.execute(
        insert(redeem_anywhere).values(
            request_id=item.request.request_id,
            fingerprint=item.request.fingerprint(),
            caller_id=item.caller_id,
            source_account=item.request.source_account,
            target_account=item.request.target_account,
            reward_id=item.request.reward_id,
            quantity=item.request.quantity,
            amount_points=item.amount_points,
            state=item.state.value,
            failure_reason="",
            redemption_id="",
            voucher_codes="[]",
            created_at=item.created_at,
            attempts=0,
            lease_until=lease_until,
            lease_owner=lease_owner,
            authorized_by=item.authorized_by,
        )
    )


def get_redeem_anywhere(conn: Connection, request_id: str) -> RedeemAnywhere | None:
    row = conn.execute(select(redeem_anywhere).where(redeem_anywhere.c.request_id == request_id)).first()
    if row is None:
        return None
    return RedeemAnywhere(
        request=RedeemAnywhereRequest(
            request_id=row.request_id,
            source_account=row.source_account,
            target_account=row.target_account,
            reward_id=row.reward_id,
            quantity=row.quantity,
        ),
        caller_id=row.caller_id,
        amount_points=row.amount_points,
        state=RedeemAnywhereState(row.state),
        created_at=row.created_at,
        failure_reason=row.failure_reason,
        redemption_id=row.redemption_id,
        voucher_codes=list(json.loads(row.voucher_codes)),
        finished_at=row.finished_at,
        attempts=row.attempts,
        authorized_by=row.authorized_by,
    )


def advance_redeem_anywhere(
    conn: Connection,
    request_id: str,
    expected: RedeemAnywhereState,
    state: RedeemAnywhereState,
    *,
    failure_reason: str | None = None,
    redemption_id: str | None = None,
    voucher_codes: Sequence[str] | None = None,
    finished_at: datetime | None = None,
) -> bool:
    """Compare-and-set on the state; False if another driver moved it first."""
    values: dict[str, Any] = {"state": state.value, "attempts": 0, "next_attempt_at": None}
    if failure_reason is not None:
        values["failure_reason"] = failure_reason[:64]
    if redemption_id is not None:
        values["redemption_id"] = redemption_id
    if voucher_codes is not None:
        values["voucher_codes"] = json.dumps(list(voucher_codes))
    if finished_at is not None:
        values["finished_at"] = finished_at
    result = conn.execute(
        update(redeem_anywhere)
        .where(redeem_anywhere.c.request_id == request_id, redeem_anywhere.c.state == expected.value)
        .values(**values)
    )
    return result.rowcount == 1
