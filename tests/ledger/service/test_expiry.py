"""ExpirePoints: expired points move to the expiry account, in resumable batches, once."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from ledger_svc.service import expiry, reads, refunds, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.tables import lots
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
        return [bool(flag) for flag in conn.execute(select(lots.c.has_points).where(lots.c.account == A)).scalars()]
