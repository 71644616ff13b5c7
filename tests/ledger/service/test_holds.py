"""Holds on real databases: hold, commit all or part, release, timeouts, exactly-once resolution, worked cases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger_svc.domain.holds import HoldRequest, HoldState
from ledger_svc.domain.transfers import Status
from ledger_svc.service import holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import AlreadyExists, FailedPrecondition
from tests.ledger.ledger_support import (
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


def test_hold_then_partial_commit_moves_part_and_releases_the_rest(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    held = holds.hold(ledger, HoldRequest("h1", A, 60))
    balance = reads.get_balance(ledger, A)
    assert (balance.available_points, balance.held_points, balance.total_points) == (40, 60, 100)
    hold, result = holds.commit_hold(ledger, "h1", 45, REDEMPTION)
    assert (hold.state, hold.committed_points, result.status) == (HoldState.COMMITTED, 45, Status.POSTED)
    assert sum(p.amount_points for p in result.lots) == 45 and held.lots
    assert transfers.get_transfer(ledger, "h1").amount_points == 45
    assert reads.get_balance(ledger, A).available_points == 55
    assert_conserved(ledger)


def test_a_hold_resolves_exactly_once(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, HoldRequest("h1", A, 30))
    holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    _, replay = holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    assert replay.status is Status.ALREADY_POSTED
    with pytest.raises(AlreadyExists) as reused:
        holds.commit_hold(ledger, "h1", 10, REDEMPTION)
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(FailedPrecondition) as committed:
        holds.release_hold(ledger, "h1")
    assert committed.value.reason == "HOLD_COMMITTED"
    assert available_points(ledger, A) == 70
    assert_conserved(ledger)


def test_hold_with_same_id_and_other_body_is_already_exists(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, HoldRequest("h1", A, 30))
    assert holds.hold(ledger, HoldRequest("h1", A, 30)).amount_points == 30
    with pytest.raises(AlreadyExists) as caught:
        holds.hold(ledger, HoldRequest("h1", A, 31))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(AlreadyExists):
        holds.hold(ledger, HoldRequest("e1", A, 1))
    assert reads.get_balance(ledger, A).held_points == 30


def test_released_hold_gives_the_points_back(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, HoldRequest("h1", A, 100))
    assert holds.release_hold(ledger, "h1").state is HoldState.RELEASED
    assert holds.release_hold(ledger, "h1").state is HoldState.RELEASED
    with pytest.raises(FailedPrecondition) as caught:
        holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    assert caught.value.reason == "HOLD_RELEASED"
    assert available_points(ledger, A) == 100


def test_an_expired_hold_counts_as_released_at_once_and_the_sweep_cleans_up(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, HoldRequest("h1", A, 70, timeout_us=60_000_000))
    clock.advance(seconds=61)
    assert holds.get_hold(ledger, "h1").state_at(ledger.now_us()) is HoldState.EXPIRED
    balance = reads.get_balance(ledger, A)
    assert (balance.available_points, balance.held_points) == (100, 0)
    with pytest.raises(FailedPrecondition) as caught:
        holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    assert caught.value.reason == "HOLD_EXPIRED"
    assert holds.sweep_expired_holds(ledger, 0) == 1
    assert holds.sweep_expired_holds(ledger, 0) == 0
    assert holds.get_hold(ledger, "h1").state is HoldState.EXPIRED
    assert_conserved(ledger)


def test_an_expired_hold_is_spendable_by_a_debit_before_the_sweep(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, HoldRequest("h1", A, 100, timeout_us=1_000_000))
    clock.advance(seconds=2)
    assert transfers.post_transfers(ledger, [spend("s1", A, 100)])[0].status is Status.POSTED
    assert_conserved(ledger)


def test_mr_li_earns_a_month_of_transit_and_redeems_a_supermarket_voucher(ledger: LedgerContext) -> None:
    # DOMAIN.md: two transit trips a day at 10 points = 600 points a month; a 1,000-point voucher needs more.
    trips = [
        earn(f"li-{day}-{trip}", A, 10, earned_at=START - timedelta(days=30 - day))
        for day in range(30)
        for trip in (1, 2)
    ]
    assert all(r.status is Status.POSTED for r in transfers.post_transfers(ledger, trips))
    assert available_points(ledger, A) == 600
    with pytest.raises(FailedPrecondition) as caught:
        holds.hold(ledger, HoldRequest("voucher", A, 1000))
    assert caught.value.reason == "INSUFFICIENT_POINTS"
    holds.hold(ledger, HoldRequest("top-up", A, 100))
    holds.commit_hold(ledger, "top-up", 0, REDEMPTION)
    assert available_points(ledger, A) == 500


def test_ms_zhang_saves_six_months_for_the_health_check(ledger: LedgerContext) -> None:
    # DOMAIN.md: about 1,200 points a month; 7,200 after six months buys the 7,200-point health check package.
    months = [earn(f"zhang-{m}", B, 1200, earned_at=START - timedelta(days=30 * (6 - m))) for m in range(6)]
    transfers.post_transfers(ledger, months)
    holds.hold(ledger, HoldRequest("health-check", B, 7200))
    _, result = holds.commit_hold(ledger, "health-check", 0, REDEMPTION)
    assert result.status is Status.POSTED and len(result.lots) == 6
    assert available_points(ledger, B) == 0
    assert_conserved(ledger)
