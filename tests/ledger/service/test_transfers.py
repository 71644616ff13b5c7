"""PostTransfers on real databases (SQLite and PostgreSQL): postings, FIFO, idempotency, linked chains, limits."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger_svc.domain.time import lot_expiry_us
from ledger_svc.domain.transfers import CarriedLot, Status, TransferRequest
from ledger_svc.service import reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import (
    ISSUANCE,
    REDEMPTION,
    START,
    MovableClock,
    account_number,
    assert_conserved,
    available_points,
    earn,
    spend,
)

A = account_number(1)
B = account_number(2)


def test_earn_then_spend_moves_points_and_keeps_the_sum_zero(ledger: LedgerContext) -> None:
    results = transfers.post_transfers(ledger, [earn("e1", A, 100), spend("s1", A, 40)])
    assert [r.status for r in results] == [Status.POSTED, Status.POSTED]
    assert available_points(ledger, A) == 60
    assert reads.get_balance(ledger, ISSUANCE).total_points == -100
    assert reads.get_balance(ledger, REDEMPTION).total_points == 40
    assert_conserved(ledger)


def test_spending_more_than_the_balance_fails_and_changes_nothing(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10)])
    [result] = transfers.post_transfers(ledger, [spend("s1", A, 11)])
    assert (result.status, result.failure_reason) == (Status.FAILED, "INSUFFICIENT_POINTS")
    assert available_points(ledger, A) == 10
    assert_conserved(ledger)


def test_replay_returns_the_first_result_and_a_changed_body_is_refused(ledger: LedgerContext) -> None:
    [first] = transfers.post_transfers(ledger, [earn("e1", A, 10)])
    [again] = transfers.post_transfers(ledger, [earn("e1", A, 10)])
    [changed] = transfers.post_transfers(ledger, [earn("e1", A, 12)])
    assert again.status is Status.ALREADY_POSTED
    assert again.posting is not None and first.posting is not None
    assert again.posting.posted_at_us == first.posting.posted_at_us
    assert [p.lot_id for p in again.lots] == [p.lot_id for p in first.lots]
    assert changed.failure_reason == "IDEMPOTENCY_KEY_REUSED"
    assert available_points(ledger, A) == 10


def test_linked_items_are_all_or_nothing(ledger: LedgerContext) -> None:
    results = transfers.post_transfers(
        ledger,
        [earn("e1", A, 50, linked=True), spend("s1", A, 80, linked=True), earn("e2", B, 5), earn("e3", B, 6)],
    )
    assert [r.failure_reason for r in results] == [
        "LINKED_TRANSFER_FAILED",
        "INSUFFICIENT_POINTS",
        "LINKED_TRANSFER_FAILED",
        "",
    ]
    assert (available_points(ledger, A), available_points(ledger, B)) == (0, 6)
    # The failed ids were not used: posting them now works.
    assert transfers.post_transfers(ledger, [earn("e1", A, 50)])[0].status is Status.POSTED
    assert_conserved(ledger)


def test_spending_takes_soonest_expiring_lot_first_and_records_it(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(
        ledger,
        [
            earn("new", A, 30, earned_at=START - timedelta(days=10)),
            earn("old", A, 20, earned_at=START - timedelta(days=400)),
        ],
    )
    [result] = transfers.post_transfers(ledger, [spend("s1", A, 25)])
    assert [(p.key.earned_on, p.amount_points) for p in result.lots] == [
        ((START - timedelta(days=400)).date(), 20),
        ((START - timedelta(days=10)).date(), 5),
    ]
    stored = transfers.get_transfer(ledger, "s1")
    assert [(p.lot_id, p.amount_points) for p in stored.debit_lots] == [
        (p.lot_id, p.amount_points) for p in result.lots
    ]


def test_expired_points_are_not_spendable_before_the_sweep(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("old", A, 20, earned_at=START - timedelta(days=700))])
    clock.advance(days=40)
    assert available_points(ledger, A) == 0
    [result] = transfers.post_transfers(ledger, [spend("s1", A, 1)])
    assert result.failure_reason == "INSUFFICIENT_POINTS"


def test_carried_lots_keep_their_expiry_dates(ledger: LedgerContext) -> None:
    expires = lot_expiry_us(date(2025, 1, 2), 24)
    carried = (
        CarriedLot(date(2025, 1, 2), expires, 30),
        CarriedLot(date(2025, 5, 1), lot_expiry_us(date(2025, 5, 1), 24), 20),
    )
    transfer_in = TransferRequest("in1", "system:clearing", A, 50, 6, carried_lots=carried)
    assert transfers.post_transfers(ledger, [transfer_in])[0].status is Status.POSTED
    lots = reads.list_lots(ledger, A, 0, "", False).lots
    assert (lots[0].key.earned_on, lots[0].key.expires_at_us, lots[0].remaining_points) == (
        date(2025, 1, 2),
        expires,
        30,
    )
    bad = TransferRequest("in2", "system:clearing", A, 51, 6, carried_lots=carried)
    assert transfers.post_transfers(ledger, [bad])[0].failure_reason == "INVALID_CARRIED_LOTS"


def test_batch_limits_are_enforced(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as empty:
        transfers.post_transfers(ledger, [])
    assert empty.value.field == "transfers"
    with pytest.raises(InvalidArgument) as too_big:
        transfers.post_transfers(ledger, [earn(f"e{i}", A, 1) for i in range(8001)])
    assert too_big.value.reason == "BATCH_TOO_LARGE"
