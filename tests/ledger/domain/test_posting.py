"""The general path's rules on a Book: expired lots, linked chains, idempotency, refusals."""

from __future__ import annotations

from datetime import date

from ledger_svc.domain.book import Book
from ledger_svc.domain.lots import UserAccount
from ledger_svc.domain.posting import post_batch
from ledger_svc.domain.time import to_us
from ledger_svc.domain.transfers import Status, TransferRequest
from tests.ledger.ledger_support import ISSUANCE, REDEMPTION, REGION, START, account_number, account_with_lots

A = account_number(1)
NOW_US = to_us(START)


def test_expired_lots_are_never_spendable() -> None:
    user = account_with_lots(A, (date(2024, 1, 1), 100), (date(2025, 1, 1), 5))
    assert user.available_points(NOW_US) == 5
    book = Book(NOW_US, {A: user})
    results = post_batch(book, [TransferRequest("t1", A, REDEMPTION, 6, 2)], {}, REGION, 24)
    assert results[0].failure_reason == "INSUFFICIENT_POINTS"


def test_a_failed_linked_chain_rolls_back_every_item() -> None:
    user = UserAccount(A, 0, 0)
    book = Book(NOW_US, {A: user})
    requests = [
        TransferRequest("t1", ISSUANCE, A, 100, 1, linked=True),
        TransferRequest("t2", A, REDEMPTION, 500, 2),
        TransferRequest("t3", ISSUANCE, A, 7, 1),
    ]
    results = post_batch(book, requests, {}, REGION, 24)
    assert [r.failure_reason for r in results] == ["LINKED_TRANSFER_FAILED", "INSUFFICIENT_POINTS", ""]
    assert user.balance_points == 7
    assert book.system_deltas[ISSUANCE] == -7


def test_an_open_chain_at_the_end_of_a_batch_fails_whole() -> None:
    book = Book(NOW_US, {A: UserAccount(A, 0, 0)})
    results = post_batch(book, [TransferRequest("t1", ISSUANCE, A, 1, 1, linked=True)], {}, REGION, 24)
    assert results[0].failure_reason == "LINKED_CHAIN_OPEN"
    assert book.accounts[A].balance_points == 0


def test_same_id_same_body_replays_and_different_body_is_refused() -> None:
    book = Book(NOW_US, {A: UserAccount(A, 0, 0)})
    requests = [
        TransferRequest("t1", ISSUANCE, A, 10, 1),
        TransferRequest("t1", ISSUANCE, A, 10, 1),
        TransferRequest("t1", ISSUANCE, A, 11, 1),
    ]
    results = post_batch(book, requests, {}, REGION, 24)
    assert [r.status for r in results] == [Status.POSTED, Status.ALREADY_POSTED, Status.FAILED]
    assert results[2].failure_reason == "IDEMPOTENCY_KEY_REUSED"
    assert book.accounts[A].balance_points == 10


def test_bad_items_fail_with_a_reason_and_change_nothing() -> None:
    book = Book(NOW_US, {A: UserAccount(A, 0, 0)})
    requests = [
        TransferRequest("", ISSUANCE, A, 10, 1),
        TransferRequest("t2", ISSUANCE, A, 0, 1),
        TransferRequest("t3", ISSUANCE, A, -5, 1),
        TransferRequest("t4", ISSUANCE, A, 5, 0),
        TransferRequest("t5", ISSUANCE, A, 5, 99),
        TransferRequest("t6", "system:bank", A, 5, 1),
        TransferRequest("t7", ISSUANCE, account_number(1, "110000"), 5, 1),
        TransferRequest("t8", ISSUANCE, "1234", 5, 1),
    ]
    results = post_batch(book, requests, {}, REGION, 24)
    assert [r.failure_reason for r in results] == [
        "MISSING_TRANSFER_ID",
        "INVALID_AMOUNT",
        "INVALID_AMOUNT",
        "INVALID_CODE",
        "INVALID_CODE",
        "INVALID_ACCOUNT",
        "INVALID_ACCOUNT",
        "INVALID_ACCOUNT",
    ]
    assert book.lot_deltas == {} or all(d.remaining_points == 0 for d in book.lot_deltas.values())
