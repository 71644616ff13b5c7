"""The set-based sweep's statements on PostgreSQL: emptied lots come back as the lots they were, field by field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text

from ledger_svc.domain.expiry import ExpiringLot, ExpiryCandidate, ExpiryOutcome
from ledger_svc.domain.time import day_of, lot_expiry_us, to_us
from ledger_svc.service import audit, expiry, reads, refunds, set_based_expiry, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import pg_expiry
from tests.ledger.ledger_support import EXPIRY, START, MovableClock, account_number, earn, spend

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
    assert candidate == ExpiryCandidate(
        lot_id=expired.lot_id, account=A, expires_at_us=lot_expiry_us(earned_on, 24), points=30
    )
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


def _stale_batch(ledger: LedgerContext, clock: MovableClock, change: Callable[[], object]) -> ExpiryOutcome:
    """Candidates found, then `change` (committed) before their batch runs: the batch runs on what it found."""
    clock.advance(days=20)
    cutoff_us = to_us(clock.now)
    with ledger.engine.connect() as conn:
        candidates = pg_expiry.expired_lot_candidates(conn, cutoff_us, 10, None)
    change()
    return ledger.transaction(lambda conn: set_based_expiry._sweep_batch(conn, ledger, candidates, cutoff_us))


def test_a_lot_refilled_after_it_was_found_expires_whole(pg_ledger: LedgerContext, clock: MovableClock) -> None:
    """Accounts are debited by what their lots held when found (ADR 0131); the batch corrects by what they held."""
    ledger = pg_ledger
    transfers.post_transfers(ledger, [earn("e1", A, 30, earned_at=START - timedelta(days=720)), earn("e2", A, 5)])
    transfers.post_transfers(ledger, [spend("s1", A, 10)])
    outcome = _stale_batch(ledger, clock, lambda: refunds.refund_transfer(ledger, "r1", "s1", 0, "voucher failed"))
    assert (outcome.lots_expired, outcome.points_expired) == (1, 30)
    assert reads.get_balance(ledger, A).total_points == 5
    assert reads.get_balance(ledger, EXPIRY).total_points == 30
    assert audit.check_conservation(ledger).balanced


@pytest.mark.parametrize(("fresh", "path"), [(5, "locked first"), (100, "corrected")])
def test_a_lot_another_sweep_emptied_after_it_was_found_is_left_alone(
    pg_ledger: LedgerContext, clock: MovableClock, fresh: int, path: str
) -> None:
    """Debiting 30 again would take the account below zero (so the batch locks first and takes what the lots lose),
    or leave it above (so the batch gives the 30 back)."""
    ledger = pg_ledger
    transfers.post_transfers(ledger, [earn("e1", A, 30, earned_at=START - timedelta(days=720)), earn("e2", A, fresh)])
    outcome = _stale_batch(ledger, clock, lambda: expiry.expire_points(ledger, None, 0, 0))
    assert (outcome.lots_expired, outcome.points_expired) == (0, 0), path
    assert reads.get_balance(ledger, A).total_points == fresh
    assert reads.get_balance(ledger, EXPIRY).total_points == 30
    assert audit.check_conservation(ledger).balanced


def test_emptying_lots_writes_no_index_entry(pg_ledger: LedgerContext, clock: MovableClock) -> None:
    """ADR 0133: no lot index names remaining_points or has_points, so the sweep's update of a lot is heap-only."""
    ledger = pg_ledger
    earned_at = START - timedelta(days=720)
    many = [account_number(n) for n in range(10, 30)]
    transfers.post_transfers(ledger, [earn(f"e{n}", account, 7, earned_at=earned_at) for n, account in enumerate(many)])
    clock.advance(days=20)
    cutoff_us = to_us(clock.now)
    with ledger.engine.begin() as conn:
        candidates = pg_expiry.expired_lot_candidates(conn, cutoff_us, 100, None)
        pg_expiry.lock_accounts(conn, many)
        swept = pg_expiry.empty_lots(conn, [candidate.lot_id for candidate in candidates], cutoff_us)
        # This transaction's own count of heap-only (HOT) updates of both lot tables.
        hot = conn.execute(
            text(
                "SELECT pg_stat_get_xact_tuples_hot_updated('lots'::regclass)"
                " + pg_stat_get_xact_tuples_hot_updated('recent_lots'::regclass)"
            )
        ).scalar_one()
    assert len(swept) == len(many) == hot
