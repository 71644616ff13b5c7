"""ExpirePoints: expired points move to the expiry account, in resumable batches, once."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Row, select

from ledger_svc.service import expiry, reads, refunds, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.tables import every_lot, expiry_requeue, expiry_watermark
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import (
    EXPIRY,
    START,
    MovableClock,
    account_number,
    assert_conserved,
    available_points,
    earn,
    spend,
)

A = account_number(1)


def test_expiry_sweep_moves_expired_points_and_is_idempotent(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(
        ledger,
        [earn(f"e{day}", A, day, earned_at=START - timedelta(days=700 + day)) for day in range(1, 6)]
        + [earn("fresh", A, 100)],
    )
    clock.advance(days=40)
    first = expiry.expire_points(ledger, None, batch_size=2, max_batches=1)
    assert (first.lots_expired, first.done) == (2, False)
    rest = expiry.expire_points(ledger, None, batch_size=2, max_batches=0)
    assert (first.points_expired + rest.points_expired, rest.done) == (15, True)
    again = expiry.expire_points(ledger, None, 0, 0)
    assert (again.lots_expired, again.points_expired, again.done) == (0, 0, True)
    assert reads.get_balance(ledger, EXPIRY).total_points == 15
    assert available_points(ledger, A) == 100
    assert_conserved(ledger)


def test_expiry_as_of_a_future_day_is_refused(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as caught:
        expiry.expire_points(ledger, date(2030, 1, 1), 0, 0)
    assert caught.value.field == "as_of"


def test_a_lot_refilled_after_its_sweep_is_swept_again(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10, earned_at=START - timedelta(days=720))])
    transfers.post_transfers(ledger, [spend("s1", A, 4)])
    clock.advance(days=20)
    assert expiry.expire_points(ledger, None, 0, 0).points_expired == 6
    # A refund is not fresh: it restores the spent points to their original lot, expired or not.
    refunds.refund_transfer(ledger, "r1", "s1", 0, "voucher failed")
    assert _has_points(ledger) == [True]
    again = expiry.expire_points(ledger, None, 0, 0)
    assert (again.lots_expired, again.points_expired) == (1, 4)
    assert reads.get_balance(ledger, EXPIRY).total_points == 10


def _has_points(ledger: LedgerContext) -> list[bool]:
    with ledger.engine.connect() as conn:
        query = select(every_lot.c.remaining_points > 0).where(every_lot.c.account == A)
        return [bool(flag) for flag in conn.execute(query).scalars()]


def test_a_run_starts_after_the_watermark_and_refills_behind_it_are_queued(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    """ADR 0133: a run goes on after the last lot every run before it emptied; a lot refilled from empty (behind the
    watermark or not yet expired) is queued by the database and swept once, then leaves the queue."""
    old, young = START - timedelta(days=725), START - timedelta(days=715)
    transfers.post_transfers(ledger, [earn("e-old", A, 10, earned_at=old), earn("e-young", A, 20, earned_at=young)])
    transfers.post_transfers(ledger, [spend("s1", A, 10), spend("s2", A, 20)])  # both lots empty, not expired
    refunds.refund_transfer(ledger, "r2", "s2", 0, "voucher failed")  # the young lot refilled from empty: queued
    assert len(_queued(ledger)) == 1
    clock.advance(days=8)  # the old lot expired (empty), the young one not yet
    assert expiry.expire_points(ledger, None, 0, 0).lots_expired == 0
    old_lot, young_lot = sorted(_lots(ledger), key=lambda lot: lot.expires_at_us)
    # Nothing with points up to the cutoff: the watermark passes the old lot, not the young one.
    assert old_lot.expires_at_us <= _watermark(ledger) < young_lot.expires_at_us
    clock.advance(days=10)
    swept = expiry.expire_points(ledger, None, 0, 0)
    # Found in the queue, and then (emptied) in the range after the watermark: swept once.
    assert (swept.lots_expired, swept.points_expired) == (1, 20)
    assert _queued(ledger) == [] and _watermark(ledger) >= young_lot.expires_at_us
    refunds.refund_transfer(ledger, "r1", "s1", 0, "voucher failed")  # the old lot, behind the watermark
    assert _queued(ledger) == [old_lot.lot_id]
    again = expiry.expire_points(ledger, None, 0, 0)
    assert (again.lots_expired, again.points_expired, _queued(ledger)) == (1, 10, [])
    assert expiry.expire_points(ledger, None, 0, 0).lots_expired == 0
    assert reads.get_balance(ledger, EXPIRY).total_points == 30
    assert_conserved(ledger)


def _queued(ledger: LedgerContext) -> list[int]:
    with ledger.engine.connect() as conn:
        return list(conn.execute(select(expiry_requeue.c.lot_id)).scalars())


def _watermark(ledger: LedgerContext) -> int:
    """The watermark's expiry instant."""
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(expiry_watermark.c.expires_at_us)).scalar_one())


def _lots(ledger: LedgerContext) -> list[Row[tuple[int, int]]]:
    with ledger.engine.connect() as conn:
        return list(conn.execute(select(every_lot.c.lot_id, every_lot.c.expires_at_us).where(every_lot.c.account == A)))


def test_a_lot_earned_after_the_clock_went_back_is_swept(ledger: LedgerContext, clock: MovableClock) -> None:
    """A rehearsal moved the clock years ahead and swept; back on the real clock, a lot earned since expires before
    the watermark the rehearsal left. The next run brings the watermark back to its cutoff (ADR 0133)."""
    transfers.post_transfers(ledger, [earn("e1", A, 10)])
    clock.advance(days=800)
    assert expiry.expire_points(ledger, None, 0, 0).points_expired == 10
    clock.advance(days=-790)
    transfers.post_transfers(ledger, [earn("e2", A, 7)])
    assert expiry.expire_points(ledger, None, 0, 0).lots_expired == 0  # the night after: nothing expired yet
    clock.advance(days=745)  # e2 has expired; the rehearsal's watermark is still 45 days ahead
    assert expiry.expire_points(ledger, None, 0, 0).points_expired == 7
    assert_conserved(ledger)
