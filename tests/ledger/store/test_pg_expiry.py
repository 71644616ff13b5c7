"""The set-based sweep's statements on PostgreSQL write what the domain rule says, field by field: the lots emptied,
the accounts debited, one transfer per lot with the rule's id, fingerprint and balance-after, and one journal batch
whose hash is the rule's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ledger_svc.domain.expiry import ExpiringLot, ExpiryCandidate, expiry_entry, expiry_transfers
from ledger_svc.domain.journal import entries_hash
from ledger_svc.domain.lots import UserAccount
from ledger_svc.domain.time import day_of, lot_expiry_us, to_us
from ledger_svc.service import reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import pg_expiry
from ledger_svc.store.tables import accounts, journal_batches, lots, transfer_lots
from ledger_svc.store.tables import transfers as journal
from tests.ledger.ledger_support import START, MovableClock, account_number, earn

pytestmark = pytest.mark.postgres
A, B = account_number(1), account_number(2)


def test_a_swept_batch_writes_what_the_expiry_rule_says(pg_ledger: LedgerContext, clock: MovableClock) -> None:
    ledger = pg_ledger
    old = [START - timedelta(days=days) for days in (722, 721, 720)]
    transfers.post_transfers(
        ledger,
        [earn("a1", A, 30, earned_at=old[0]), earn("a2", A, 7, earned_at=old[1]), earn("a3", A, 5)]
        + [earn("b1", B, 11, earned_at=old[2])],
    )
    expired = {lot.remaining_points: lot for a in (A, B) for lot in reads.list_lots(ledger, a, 0, "", False).lots}
    clock.advance(days=20)
    cutoff_us = now_us = to_us(clock.now)

    with ledger.engine.begin() as conn:
        candidates = pg_expiry.expired_lot_candidates(conn, cutoff_us, 10, None)
        assert pg_expiry.lock_accounts(conn, [candidate.account for candidate in candidates]) == 2
        before = conn.execute(select(lots).where(lots.c.lot_id.in_([c.lot_id for c in candidates]))).all()
        swept = pg_expiry.sweep_lots(conn, [candidate.lot_id for candidate in candidates], cutoff_us, now_us)
        assert pg_expiry.expired_lot_candidates(conn, cutoff_us, 10, candidates[-1]) == []
        assert pg_expiry.sweep_lots(conn, [c.lot_id for c in candidates], cutoff_us, now_us) == (0, 0), "only once"
        written = conn.execute(select(journal).order_by(journal.c.transfer_id).where(journal.c.code == 3)).all()
        (batch,) = conn.execute(select(journal_batches).where(journal_batches.c.batch_id == written[0].batch_id))
        records = conn.execute(select(transfer_lots).order_by(transfer_lots.c.transfer_id)).all()
        left = dict(conn.execute(select(lots.c.lot_id, lots.c.remaining_points)).all())
        balances = dict(conn.execute(select(accounts.c.account, accounts.c.balance_points)).all())
        conn.rollback()

    assert candidates[0] == ExpiryCandidate(
        expired[30].lot_id, A, lot_expiry_us(day_of(to_us(old[0])), 24)
    ), "oldest first, in (expiry, lot id) order"
    assert swept == (3, 48)
    rule = expiry_transfers(
        [ExpiringLot(r.lot_id, r.account, r.expires_at_us, r.earned_on, r.remaining_points, 0) for r in before],
        {A: UserAccount(A, 42, 0), B: UserAccount(B, 11, 0)},
        now_us,
    )
    expected = sorted(rule, key=lambda transfer: transfer.transfer_id)
    assert [(t.transfer_id, t.debit_account, t.credit_account, t.amount_points) for t in written] == [
        (t.transfer_id, t.lot.account, "system:expiry", t.lot.points) for t in expected
    ]
    assert [(t.reference, t.fingerprint, t.debit_balance_after, t.posted_at_us) for t in written] == [
        (t.reference, t.fingerprint, t.debit_balance_after, now_us) for t in expected
    ]
    assert (batch.entries_hash, batch.entries_count) == entries_hash(expiry_entry(t, now_us) for t in rule)
    assert [(r.transfer_id, r.side, r.position, r.lot_id, r.amount_points) for r in records] == [
        (t.transfer_id, "D", 0, t.lot.lot_id, t.lot.points) for t in expected
    ]
    assert [left[expired[p].lot_id] for p in (30, 7, 11)] == [0, 0, 0] and left[expired[5].lot_id] == 5
    assert (balances[A], balances[B]) == (5, 0)
