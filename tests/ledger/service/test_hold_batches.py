"""Batched holds (HoldBatch, CommitHolds, ReleaseHolds) on SQLite and PostgreSQL: each item answers as its unary
call would, in request order, and a refused item changes nothing for itself and never fails the others."""

from __future__ import annotations

import pytest

from ledger_svc.domain.holds import CommitItem, HoldOutcome, HoldRequest, HoldState, ItemStatus, Refused
from ledger_svc.domain.transfers import Status
from ledger_svc.service import hold_batches, holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import InvalidArgument, NotFound
from tests.ledger.ledger_support import (
    REDEMPTION,
    MovableClock,
    account_number,
    assert_conserved,
    available_points,
    earn,
)

A = account_number(1)
B = account_number(2)
C = account_number(3)


def _statuses(outcomes: list[HoldOutcome]) -> list[tuple[str, ItemStatus, str]]:
    return [(o.hold_id, o.status, o.error.reason if o.error else "") for o in outcomes]


def test_items_are_decided_in_order_and_a_refusal_fails_alone(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100), earn("e2", B, 50)])
    outcomes = hold_batches.hold_batch(
        ledger,
        [
            HoldRequest("h1", A, 60),
            HoldRequest("h2", A, 60),  # only 40 left after h1
            HoldRequest("h3", A, 40, commit_to_account=REDEMPTION),
            HoldRequest("h4", B, 0),  # bad field
            HoldRequest("h5", B, 50, commit_to_account=C),  # to a user account: C receives the lots
            Refused("h6", InvalidArgument("timeout", "must not be negative")),
        ],
    )
    assert _statuses(outcomes) == [
        ("h1", ItemStatus.DONE, ""),
        ("h2", ItemStatus.FAILED, "INSUFFICIENT_POINTS"),
        ("h3", ItemStatus.DONE, ""),
        ("h4", ItemStatus.FAILED, "INVALID_AMOUNT"),
        ("h5", ItemStatus.DONE, ""),
        ("h6", ItemStatus.FAILED, "INVALID_ARGUMENT"),
    ]
    assert outcomes[3].error is not None and getattr(outcomes[3].error, "field", "") == "amount_points"
    assert outcomes[0].hold is not None and outcomes[0].hold.state is HoldState.PENDING
    assert outcomes[2].result is not None and outcomes[2].result.status is Status.POSTED
    assert outcomes[4].result is not None and sum(p.amount_points for p in outcomes[4].result.lots) == 50
    balance = reads.get_balance(ledger, A)
    assert (balance.available_points, balance.held_points, balance.total_points) == (0, 60, 60)
    assert available_points(ledger, B) == 0 and available_points(ledger, C) == 50
    assert holds.get_hold(ledger, "h3").state is HoldState.COMMITTED
    assert transfers.get_transfer(ledger, "h3").amount_points == 40
    with pytest.raises(NotFound):
        holds.get_hold(ledger, "h2")
    assert_conserved(ledger)


def test_repeats_answer_as_the_unary_calls(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, HoldRequest("u1", A, 10))
    first = hold_batches.hold_batch(
        ledger,
        [
            HoldRequest("u1", A, 10),  # a unary hold repeated in a batch
            HoldRequest("b1", A, 20, commit_to_account=REDEMPTION),
            HoldRequest("b1", A, 20, commit_to_account=REDEMPTION),  # repeated within the batch
            HoldRequest("b1", A, 21, commit_to_account=REDEMPTION),
            HoldRequest("e1", A, 5),  # a transfer's id
        ],
    )
    assert _statuses(first) == [
        ("u1", ItemStatus.REPEATED, ""),
        ("b1", ItemStatus.DONE, ""),
        ("b1", ItemStatus.REPEATED, ""),
        ("b1", ItemStatus.FAILED, "IDEMPOTENCY_KEY_REUSED"),
        ("e1", ItemStatus.FAILED, "IDEMPOTENCY_KEY_REUSED"),
    ]
    assert first[2].result is not None and first[2].result.status is Status.ALREADY_POSTED
    again = hold_batches.hold_batch(ledger, [HoldRequest("b1", A, 20, commit_to_account=REDEMPTION)])
    assert _statuses(again) == [("b1", ItemStatus.REPEATED, "")]
    # The unary call sees the batch's hold as its own.
    placed, result = holds.hold_and_commit(ledger, HoldRequest("b1", A, 20, commit_to_account=REDEMPTION))
    assert result.status is Status.ALREADY_POSTED and placed.state is HoldState.COMMITTED
    assert available_points(ledger, A) == 70
    assert_conserved(ledger)


def test_commit_and_release_batches(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100), earn("e2", B, 100)])
    hold_batches.hold_batch(
        ledger,
        [HoldRequest("h1", A, 30), HoldRequest("h2", A, 30), HoldRequest("h3", B, 30), HoldRequest("h4", B, 10)],
    )
    commits = hold_batches.commit_holds(
        ledger,
        [
            CommitItem("h1", 20, REDEMPTION),  # part: 10 back
            CommitItem("h1", 20, REDEMPTION),  # the same commit again
            CommitItem("h1", 25, REDEMPTION),  # another amount
            CommitItem("nope", 0, REDEMPTION),
            CommitItem("h3", 0, C),  # to a user account
            CommitItem("h2", 31, REDEMPTION),  # above the hold
            CommitItem("h2", 0, A),  # the held account
        ],
    )
    assert _statuses(commits) == [
        ("h1", ItemStatus.DONE, ""),
        ("h1", ItemStatus.REPEATED, ""),
        ("h1", ItemStatus.FAILED, "IDEMPOTENCY_KEY_REUSED"),
        ("nope", ItemStatus.FAILED, "HOLD_NOT_FOUND"),
        ("h3", ItemStatus.DONE, ""),
        ("h2", ItemStatus.FAILED, "INVALID_ARGUMENT"),
        ("h2", ItemStatus.FAILED, "INVALID_ARGUMENT"),
    ]
    releases = hold_batches.release_holds(ledger, ["h2", "h2", "h1", "nope"])
    assert _statuses(releases) == [
        ("h2", ItemStatus.DONE, ""),
        ("h2", ItemStatus.REPEATED, ""),
        ("h1", ItemStatus.FAILED, "HOLD_COMMITTED"),
        ("nope", ItemStatus.FAILED, "HOLD_NOT_FOUND"),
    ]
    clock.advance(minutes=16)
    late = hold_batches.commit_holds(ledger, [CommitItem("h4", 0, REDEMPTION)])
    assert _statuses(late) == [("h4", ItemStatus.FAILED, "HOLD_EXPIRED")]
    assert available_points(ledger, A) == 80 and available_points(ledger, B) == 70
    assert available_points(ledger, C) == 30
    assert holds.get_hold(ledger, "h1").committed_points == 20
    assert_conserved(ledger)


def test_a_batch_with_no_items_or_too_many_is_invalid(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument):
        hold_batches.hold_batch(ledger, [])
    with pytest.raises(InvalidArgument) as large:
        hold_batches.release_holds(ledger, [f"h{i}" for i in range(1001)])
    assert large.value.reason == "BATCH_TOO_LARGE"
