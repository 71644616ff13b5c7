"""The set-based sweep's statements on PostgreSQL: emptied lots come back as the lots they were, field by field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger_svc.domain.expiry import ExpiringLot, ExpiryCandidate
from ledger_svc.domain.time import day_of, lot_expiry_us, to_us
from ledger_svc.service import reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import pg_expiry
from tests.ledger.ledger_support import START, MovableClock, account_number, earn

pytestmark = pytest.mark.postgres
A = account_number(1)


def test_emptied_lots_are_read_back_field_by_field(pg_ledger: LedgerContext, clock: MovableClock) -> None:
    ledger = pg_ledger
    earned_at = START - timedelta(days=720)
    transfers.post_transfers(ledger, [earn("e1", A, 30, earned_at=earned_at), earn("e2", A, 5)])
    (expired,) = [lot for lot in reads.list_lots(ledger, A, 0, "", False).lots if lot.remaining_points == 30]
    clock.advance(days=20)
    cutoff_us = to_us(clock.now)

    with ledger.engine.begin() as conn:
        (candidate,) = pg_expiry.expired_lot_candidates(conn, cutoff_us, 10, None)
        users = pg_expiry.lock_accounts(conn, [candidate.account])
        swept = pg_expiry.empty_lots(conn, [candidate.lot_id], cutoff_us)
        assert pg_expiry.expired_lot_candidates(conn, cutoff_us, 10, candidate) == []
        conn.rollback()

    earned_on = day_of(to_us(earned_at))
    assert candidate == ExpiryCandidate(lot_id=expired.lot_id, account=A, expires_at_us=lot_expiry_us(earned_on, 24))
    assert (users[A].balance_points, users[A].held_points) == (35, 0)
    assert swept == [
        ExpiringLot(
            lot_id=expired.lot_id,
            account=A,
            expires_at_us=lot_expiry_us(earned_on, 24),
            earned_on=earned_on,
            points=30,
            expired_before=0,
        )
    ]
