"""The checks every fault test ends with: the ledger's journal verifies and conserves points, and rewards' records
agree with the ledger's (balances = earned - redeemed + refunded, nothing left held, no voucher both refunded and
usable)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from sqlalchemy import Engine, text

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from rewards_svc.domain.vouchers import refund_id_for
from service_kit.accounts import REDEMPTION_ACCOUNT


def assert_journal_sound(ledger: ledger_service_pb2_grpc.LedgerServiceStub) -> lpb.CheckConservationResponse:
    """VerifyJournal and CheckConservation (the full audit) both pass, and the incremental check answers the same
    figures; returns the conservation figures."""
    verified = ledger.VerifyJournal(lpb.VerifyJournalRequest(), timeout=30)
    assert verified.ok, verified
    conservation = ledger.CheckConservation(lpb.CheckConservationRequest(full_audit=True), timeout=30)
    assert conservation.balanced and not conservation.problems, conservation
    incremental = ledger.CheckConservation(lpb.CheckConservationRequest(), timeout=30)
    assert not incremental.full_audit and incremental.balanced, incremental
    incremental.full_audit = True
    assert incremental == conservation
    return conservation


def _refund_posted(ledger: ledger_service_pb2_grpc.LedgerServiceStub, refund_id: str) -> int:
    """The points of the posted refund with this id, 0 when there is none."""
    try:
        transfer = ledger.GetTransfer(lpb.GetTransferRequest(transfer_id=refund_id), timeout=10).transfer
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        return 0
    assert transfer.code == lpb.TRANSFER_CODE_REFUND, transfer
    return int(transfer.amount_points)


@dataclass(frozen=True)
class RewardsBooks:
    """One account's redemptions and refunds as rewards recorded them."""

    redeemed: int
    refunded: int
    unsettled: int  # PENDING redemptions and CANCELLING vouchers: must be none once recovery has run


def rewards_books(engine: Engine, account: str) -> RewardsBooks:
    with engine.connect() as connection:
        redeemed = connection.execute(
            text("SELECT COALESCE(SUM(amount_points), 0) FROM redemptions WHERE account_number = :a AND state = :s"),
            {"a": account, "s": "COMPLETED"},
        ).scalar_one()
        refunded = connection.execute(
            text(
                "SELECT COALESCE(SUM(v.price_points), 0) FROM vouchers v JOIN redemptions r"
                " ON r.redemption_id = v.redemption_id"
                " WHERE v.account_number = :a AND v.state = 'CANCELLED' AND r.state = 'COMPLETED'"
            ),
            {"a": account},
        ).scalar_one()
        unsettled = connection.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM redemptions WHERE account_number = :a AND state = 'PENDING')"
                " + (SELECT COUNT(*) FROM vouchers WHERE account_number = :a AND state = 'CANCELLING')"
            ),
            {"a": account},
        ).scalar_one()
    return RewardsBooks(int(redeemed), int(refunded), int(unsettled))


def assert_no_voucher_refunded_and_usable(
    engine: Engine, ledger: ledger_service_pb2_grpc.LedgerServiceStub, account: str
) -> None:
    """A voucher of a completed redemption is CANCELLED exactly when the ledger holds its refund; one of a failed
    redemption was never paid, so never refunded."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT v.state, v.seq, v.price_points, r.hold_id, r.state FROM vouchers v JOIN redemptions r"
                " ON r.redemption_id = v.redemption_id WHERE v.account_number = :a"
            ),
            {"a": account},
        ).all()
    for state, seq, price, hold_id, redemption_state in rows:
        refunded = _refund_posted(ledger, refund_id_for(hold_id, seq))
        cancelled = state == "CANCELLED" and redemption_state == "COMPLETED"
        assert refunded == (price if cancelled else 0), (state, redemption_state, refunded)


def assert_rewards_agree_with_the_ledger(
    engine: Engine, ledger: ledger_service_pb2_grpc.LedgerServiceStub, earned: dict[str, int]
) -> None:
    """For every account: nothing unsettled, nothing held, balance = earned - redeemed + refunded; the redemption
    account holds what rewards says was redeemed and not refunded; the journal verifies and conserves."""
    net_redeemed = 0
    for account, points in earned.items():
        books = rewards_books(engine, account)
        assert books.unsettled == 0, (account, books)
        balance = ledger.GetBalance(lpb.GetBalanceRequest(account=account), timeout=10).balance
        assert balance.total_points == points - books.redeemed + books.refunded, (account, books, balance)
        assert balance.available_points == balance.total_points, ("points left held", account, balance)
        assert_no_voucher_refunded_and_usable(engine, ledger, account)
        net_redeemed += books.redeemed - books.refunded
    redemption = ledger.GetBalance(lpb.GetBalanceRequest(account=REDEMPTION_ACCOUNT), timeout=10).balance
    assert redemption.total_points == net_redeemed
    conservation = assert_journal_sound(ledger)
    assert conservation.issued_points == sum(earned.values())
