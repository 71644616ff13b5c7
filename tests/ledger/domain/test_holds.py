"""Holds: a request with defaults filled in, its fingerprint, and the transfer a commit posts."""

from __future__ import annotations

from datetime import date

from ledger_svc.domain.fingerprints import fingerprint_of
from ledger_svc.domain.holds import DEFAULT_HOLD_TIMEOUT_US, Hold, HoldRequest, HoldState, commit_posting
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.transfers import Posting
from tests.ledger.ledger_support import REDEMPTION, account_number

A = account_number(1)
NOW_US = 1_773_000_000_000_000


def test_a_hold_request_places_a_pending_hold_with_the_defaults_filled_in() -> None:
    request = HoldRequest("h1", A, 60, reference="voucher-7", metadata=(("shop", "超市"),))

    hold = request.pending_hold(NOW_US)

    assert hold == Hold(
        hold_id="h1",
        account=A,
        amount_points=60,
        state=HoldState.PENDING,
        expires_at_us=NOW_US + DEFAULT_HOLD_TIMEOUT_US,
        code=2,
        fingerprint=fingerprint_of(["hold", A, 60, DEFAULT_HOLD_TIMEOUT_US, 2, "voucher-7", [["shop", "超市"]]]),
        created_at_us=NOW_US,
        reference="voucher-7",
        metadata_json='{"shop":"超市"}',
    )
    assert HoldRequest("h1", A, 60, DEFAULT_HOLD_TIMEOUT_US, 2, "voucher-7", (("shop", "超市"),)).fingerprint() == (
        hold.fingerprint
    )


def test_a_commit_posts_the_committed_portions_as_transfer_hold_id() -> None:
    hold = HoldRequest("h1", A, 60, code=4, reference="tree", metadata=(("k", "v"),)).pending_hold(NOW_US)
    committed = [
        Portion(LotKey(A, NOW_US + 9, date(2025, 1, 1)), 40, 3),
        Portion(LotKey(A, NOW_US + 99, date(2025, 2, 1)), 5, 4),
    ]

    posting = commit_posting(hold, REDEMPTION, committed, NOW_US + 1, debit_balance_after=55)

    assert posting == Posting(
        transfer_id="h1",
        debit_account=A,
        credit_account=REDEMPTION,
        amount_points=45,
        code=4,
        posted_at_us=NOW_US + 1,
        fingerprint=fingerprint_of(["commit", "h1", REDEMPTION, 45]),
        reference="tree",
        metadata_json='{"k":"v"}',
        debit_balance_after=55,
        debit_lots=committed,
    )
