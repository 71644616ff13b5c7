"""RefundTransfer: points go back to the lots they came from, latest-expiring first, at most once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.time import lot_expiry_us
from ledger_svc.domain.transfers import Status
from ledger_svc.service import audit, holds, reads, refunds, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import AlreadyExists, FailedPrecondition, NotFound
from tests.ledger.ledger_support import REDEMPTION, START, account_number, assert_conserved, earn, spend

A = account_number(1)


def test_refund_restores_points_to_their_original_lots_and_expiry(ledger: LedgerContext) -> None:
    earned_at = START - timedelta(days=300)
    transfers.post_transfers(ledger, [earn("e1", A, 50, earned_at=earned_at), earn("e2", A, 50)])
    holds.hold(ledger, HoldRequest("h1", A, 80))
    holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    refund = refunds.refund_transfer(ledger, "r1", "h1", 30, "voucher failed")
    assert refund.status is Status.POSTED
    # The latest-expiring points come back first: all 30 to the lot earned today.
    assert [(p.key.earned_on, p.amount_points) for p in refund.lots] == [(START.date(), 30)]
    rest = refunds.refund_transfer(ledger, "r2", "h1", 0, "")
    assert sum(p.amount_points for p in rest.lots) == 50
    lots = reads.list_lots(ledger, A, 0, "", False).lots
    assert {(lot.key.expires_at_us, lot.remaining_points) for lot in lots} == {
        (lot_expiry_us((earned_at + timedelta(hours=8)).date(), 24), 50),
        (lot_expiry_us(START.date(), 24), 50),
    }
    assert refunds.refund_transfer(ledger, "r2", "h1", 0, "").status is Status.ALREADY_POSTED
    with pytest.raises(FailedPrecondition) as exceeded:
        refunds.refund_transfer(ledger, "r3", "h1", 1, "")
    assert exceeded.value.reason == "REFUND_EXCEEDS_ORIGINAL"
    with pytest.raises(AlreadyExists):
        refunds.refund_transfer(ledger, "r1", "h1", 31, "voucher failed")
    with pytest.raises(NotFound):
        refunds.refund_transfer(ledger, "r4", "nope", 0, "")
    assert_conserved(ledger)


ALICE, BOB, CAROL = (account_number(n) for n in (1, 2, 3))


def test_refunds_and_spending_after_earns_answer_as_before(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", ALICE, 100)])
    (spent,) = transfers.post_transfers(ledger, [spend("s1", ALICE, 60)])
    refund = refunds.refund_transfer(ledger, "r1", "s1", 20, "")
    assert refund.status is Status.POSTED
    assert [(p.lot_id, p.amount_points) for p in refund.lots] == [(spent.lots[0].lot_id, 20)]
    assert audit.verify_journal(ledger).ok and audit.check_conservation(ledger).balanced
