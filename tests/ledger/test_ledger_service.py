"""Use cases on real databases (SQLite and PostgreSQL): postings, FIFO, holds, refunds, expiry, journal, reads."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from ledger_svc.domain.holds import HoldState
from ledger_svc.domain.posting import CarriedLot, Status, TransferRequest
from ledger_svc.domain.time import lot_expiry_us, to_us
from ledger_svc.service import holds, ops, postings, reads
from ledger_svc.service.context import LedgerContext
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.ledger.ledger_support import EXPIRY, ISSUANCE, REDEMPTION, START, MovableClock, account_number, earn, spend

A = account_number(1)
B = account_number(2)


def _available(ledger: LedgerContext, account: str) -> int:
    return reads.get_balance(ledger, account).available_points


def _assert_conserved(ledger: LedgerContext) -> None:
    result = ops.check_conservation(ledger)
    assert result.balanced, result.problems
    assert result.sum_of_all_balances_points == 0


def test_earn_then_spend_moves_points_and_keeps_the_sum_zero(ledger: LedgerContext) -> None:
    results = postings.post_transfers(ledger, [earn("e1", A, 100), spend("s1", A, 40)])
    assert [r.status for r in results] == [Status.POSTED, Status.POSTED]
    assert _available(ledger, A) == 60
    assert reads.get_balance(ledger, ISSUANCE).total_points == -100
    assert reads.get_balance(ledger, REDEMPTION).total_points == 40
    _assert_conserved(ledger)


def test_spending_more_than_the_balance_fails_and_changes_nothing(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 10)])
    [result] = postings.post_transfers(ledger, [spend("s1", A, 11)])
    assert (result.status, result.failure_reason) == (Status.FAILED, "INSUFFICIENT_POINTS")
    assert _available(ledger, A) == 10
    _assert_conserved(ledger)


def test_replay_returns_the_first_result_and_a_changed_body_is_refused(ledger: LedgerContext) -> None:
    [first] = postings.post_transfers(ledger, [earn("e1", A, 10)])
    [again] = postings.post_transfers(ledger, [earn("e1", A, 10)])
    [changed] = postings.post_transfers(ledger, [earn("e1", A, 12)])
    assert again.status is Status.ALREADY_POSTED
    assert again.posting is not None and first.posting is not None
    assert again.posting.posted_at_us == first.posting.posted_at_us
    assert [p.lot_id for p in again.lots] == [p.lot_id for p in first.lots]
    assert changed.failure_reason == "IDEMPOTENCY_KEY_REUSED"
    assert _available(ledger, A) == 10


def test_linked_items_are_all_or_nothing(ledger: LedgerContext) -> None:
    results = postings.post_transfers(
        ledger,
        [earn("e1", A, 50, linked=True), spend("s1", A, 80, linked=True), earn("e2", B, 5), earn("e3", B, 6)],
    )
    assert [r.failure_reason for r in results] == [
        "LINKED_TRANSFER_FAILED",
        "INSUFFICIENT_POINTS",
        "LINKED_TRANSFER_FAILED",
        "",
    ]
    assert (_available(ledger, A), _available(ledger, B)) == (0, 6)
    # The failed ids were not used: posting them now works.
    assert postings.post_transfers(ledger, [earn("e1", A, 50)])[0].status is Status.POSTED
    _assert_conserved(ledger)


def test_spending_takes_soonest_expiring_lot_first_and_records_it(ledger: LedgerContext, clock: MovableClock) -> None:
    postings.post_transfers(
        ledger,
        [
            earn("new", A, 30, earned_at=START - timedelta(days=10)),
            earn("old", A, 20, earned_at=START - timedelta(days=400)),
        ],
    )
    [result] = postings.post_transfers(ledger, [spend("s1", A, 25)])
    assert [(p.key.earned_on, p.amount_points) for p in result.lots] == [
        ((START - timedelta(days=400)).date(), 20),
        ((START - timedelta(days=10)).date(), 5),
    ]
    stored = postings.get_transfer(ledger, "s1")
    assert [(p.lot_id, p.amount_points) for p in stored.debit_lots] == [
        (p.lot_id, p.amount_points) for p in result.lots
    ]


def test_expired_points_are_not_spendable_before_the_sweep(ledger: LedgerContext, clock: MovableClock) -> None:
    postings.post_transfers(ledger, [earn("old", A, 20, earned_at=START - timedelta(days=700))])
    clock.advance(days=40)
    assert _available(ledger, A) == 0
    [result] = postings.post_transfers(ledger, [spend("s1", A, 1)])
    assert result.failure_reason == "INSUFFICIENT_POINTS"


def test_expiry_sweep_moves_expired_points_and_is_idempotent(ledger: LedgerContext, clock: MovableClock) -> None:
    postings.post_transfers(
        ledger,
        [earn(f"e{day}", A, day, earned_at=START - timedelta(days=700 + day)) for day in range(1, 6)]
        + [earn("fresh", A, 100)],
    )
    clock.advance(days=40)
    first = ops.expire_points(ledger, None, batch_size=2, max_batches=1)
    assert (first.lots_expired, first.done) == (2, False)
    rest = ops.expire_points(ledger, None, batch_size=2, max_batches=0)
    assert (first.points_expired + rest.points_expired, rest.done) == (15, True)
    again = ops.expire_points(ledger, None, 0, 0)
    assert (again.lots_expired, again.points_expired, again.done) == (0, 0, True)
    assert reads.get_balance(ledger, EXPIRY).total_points == 15
    assert _available(ledger, A) == 100
    _assert_conserved(ledger)


def test_expiry_as_of_a_future_day_is_refused(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ops.expire_points(ledger, date(2030, 1, 1), 0, 0)
    assert caught.value.field == "as_of"


def test_list_expiring_points_groups_by_expiry_day(ledger: LedgerContext) -> None:
    earned = START - timedelta(days=720)
    postings.post_transfers(ledger, [earn("e1", A, 7, earned_at=earned), earn("e2", A, 100)])
    days = reads.list_expiring_points(ledger, A, 0)
    assert days == [((earned + timedelta(hours=8)).date().replace(year=earned.year + 2), 7)]
    assert reads.get_balance(ledger, A).expiring_within_30_days_points == 7


def test_hold_then_partial_commit_moves_part_and_releases_the_rest(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 100)])
    held = holds.hold(ledger, holds.HoldRequest("h1", A, 60))
    balance = reads.get_balance(ledger, A)
    assert (balance.available_points, balance.held_points, balance.total_points) == (40, 60, 100)
    hold, result = holds.commit_hold(ledger, "h1", 45, REDEMPTION)
    assert (hold.state, hold.committed_points, result.status) == (HoldState.COMMITTED, 45, Status.POSTED)
    assert sum(p.amount_points for p in result.lots) == 45 and held.lots
    assert postings.get_transfer(ledger, "h1").amount_points == 45
    assert reads.get_balance(ledger, A).available_points == 55
    _assert_conserved(ledger)


def test_a_hold_resolves_exactly_once(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, holds.HoldRequest("h1", A, 30))
    holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    _, replay = holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    assert replay.status is Status.ALREADY_POSTED
    with pytest.raises(AlreadyExists) as reused:
        holds.commit_hold(ledger, "h1", 10, REDEMPTION)
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(FailedPrecondition) as committed:
        holds.release_hold(ledger, "h1")
    assert committed.value.reason == "HOLD_COMMITTED"
    assert _available(ledger, A) == 70
    _assert_conserved(ledger)


def test_hold_with_same_id_and_other_body_is_already_exists(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, holds.HoldRequest("h1", A, 30))
    assert holds.hold(ledger, holds.HoldRequest("h1", A, 30)).amount_points == 30
    with pytest.raises(AlreadyExists) as caught:
        holds.hold(ledger, holds.HoldRequest("h1", A, 31))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(AlreadyExists):
        holds.hold(ledger, holds.HoldRequest("e1", A, 1))
    assert reads.get_balance(ledger, A).held_points == 30


def test_released_hold_gives_the_points_back(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, holds.HoldRequest("h1", A, 100))
    assert holds.release_hold(ledger, "h1").state is HoldState.RELEASED
    assert holds.release_hold(ledger, "h1").state is HoldState.RELEASED
    with pytest.raises(FailedPrecondition) as caught:
        holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    assert caught.value.reason == "HOLD_RELEASED"
    assert _available(ledger, A) == 100


def test_an_expired_hold_counts_as_released_at_once_and_the_sweep_cleans_up(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, holds.HoldRequest("h1", A, 70, timeout_us=60_000_000))
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
    _assert_conserved(ledger)


def test_an_expired_hold_is_spendable_by_a_debit_before_the_sweep(ledger: LedgerContext, clock: MovableClock) -> None:
    postings.post_transfers(ledger, [earn("e1", A, 100)])
    holds.hold(ledger, holds.HoldRequest("h1", A, 100, timeout_us=1_000_000))
    clock.advance(seconds=2)
    assert postings.post_transfers(ledger, [spend("s1", A, 100)])[0].status is Status.POSTED
    _assert_conserved(ledger)


def test_refund_restores_points_to_their_original_lots_and_expiry(ledger: LedgerContext) -> None:
    earned_at = START - timedelta(days=300)
    postings.post_transfers(ledger, [earn("e1", A, 50, earned_at=earned_at), earn("e2", A, 50)])
    holds.hold(ledger, holds.HoldRequest("h1", A, 80))
    holds.commit_hold(ledger, "h1", 0, REDEMPTION)
    refund = postings.refund_transfer(ledger, "r1", "h1", 30, "voucher failed")
    assert refund.status is Status.POSTED
    # The latest-expiring points come back first: all 30 to the lot earned today.
    assert [(p.key.earned_on, p.amount_points) for p in refund.lots] == [(START.date(), 30)]
    rest = postings.refund_transfer(ledger, "r2", "h1", 0, "")
    assert sum(p.amount_points for p in rest.lots) == 50
    lots = reads.list_lots(ledger, A, 0, "", False).lots
    assert {(lot.key.expires_at_us, lot.remaining_points) for lot in lots} == {
        (lot_expiry_us((earned_at + timedelta(hours=8)).date(), 24), 50),
        (lot_expiry_us(START.date(), 24), 50),
    }
    assert postings.refund_transfer(ledger, "r2", "h1", 0, "").status is Status.ALREADY_POSTED
    with pytest.raises(FailedPrecondition) as exceeded:
        postings.refund_transfer(ledger, "r3", "h1", 1, "")
    assert exceeded.value.reason == "REFUND_EXCEEDS_ORIGINAL"
    with pytest.raises(AlreadyExists):
        postings.refund_transfer(ledger, "r1", "h1", 31, "voucher failed")
    with pytest.raises(NotFound):
        postings.refund_transfer(ledger, "r4", "nope", 0, "")
    _assert_conserved(ledger)


def test_carried_lots_keep_their_expiry_dates(ledger: LedgerContext) -> None:
    expires = lot_expiry_us(date(2025, 1, 2), 24)
    carried = (
        CarriedLot(date(2025, 1, 2), expires, 30),
        CarriedLot(date(2025, 5, 1), lot_expiry_us(date(2025, 5, 1), 24), 20),
    )
    transfer_in = TransferRequest("in1", "system:clearing", A, 50, 6, carried_lots=carried)
    assert postings.post_transfers(ledger, [transfer_in])[0].status is Status.POSTED
    lots = reads.list_lots(ledger, A, 0, "", False).lots
    assert (lots[0].key.earned_on, lots[0].key.expires_at_us, lots[0].remaining_points) == (
        date(2025, 1, 2),
        expires,
        30,
    )
    bad = TransferRequest("in2", "system:clearing", A, 51, 6, carried_lots=carried)
    assert postings.post_transfers(ledger, [bad])[0].failure_reason == "INVALID_CARRIED_LOTS"


def test_batch_limits_are_enforced(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as empty:
        postings.post_transfers(ledger, [])
    assert empty.value.field == "transfers"
    with pytest.raises(InvalidArgument) as too_big:
        postings.post_transfers(ledger, [earn(f"e{i}", A, 1) for i in range(8001)])
    assert too_big.value.reason == "BATCH_TOO_LARGE"


def test_statement_is_newest_first_paged_and_filtered(ledger: LedgerContext, clock: MovableClock) -> None:
    for index in range(5):
        postings.post_transfers(ledger, [earn(f"e{index}", A, 10)])
        clock.advance(minutes=1)
    postings.post_transfers(ledger, [spend("s1", A, 15)])
    first = reads.list_statement_entries(ledger, A, 4, "", [], 0, 0)
    assert [e.transfer_id for e in first.entries] == ["s1", "e4", "e3", "e2"]
    assert [e.balance_after_points for e in first.entries] == [35, 50, 40, 30]
    second = reads.list_statement_entries(ledger, A, 4, first.next_page_token, [], 0, 0)
    assert ([e.transfer_id for e in second.entries], second.next_page_token) == (["e1", "e0"], "")
    redeem_only = reads.list_statement_entries(ledger, A, 0, "", [2], 0, 0)
    assert [e.amount_points for e in redeem_only.entries] == [-15]
    window = reads.list_statement_entries(
        ledger, A, 0, "", [], to_us(START + timedelta(minutes=1)), to_us(START + timedelta(minutes=3))
    )
    assert [e.transfer_id for e in window.entries] == ["e2", "e1"]
    with pytest.raises(InvalidArgument) as bad_token:
        reads.list_statement_entries(ledger, A, 0, "garbage!", [], 0, 0)
    assert bad_token.value.field == "page_token"


def test_verify_journal_finds_the_first_tampered_block(ledger: LedgerContext) -> None:
    for index in range(3):
        postings.post_transfers(ledger, [earn(f"e{index}", A, 10), earn(f"f{index}", B, 1)])
    verified = ops.verify_journal(ledger)
    assert (verified.ok, verified.blocks_checked, verified.entries_checked) == (True, 3, 6)
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE transfers SET amount_points = 11 WHERE transfer_id = 'e1'"))
    broken = ops.verify_journal(ledger)
    assert (broken.ok, broken.first_broken_block) == (False, 2)
    assert not ops.check_conservation(ledger).balanced


def test_bad_account_names_are_invalid_argument_naming_the_field(ledger: LedgerContext) -> None:
    for bad in ("", "system:bank", account_number(5, "110000"), "3300000000000000"):
        with pytest.raises(InvalidArgument) as caught:
            reads.get_balance(ledger, bad)
        assert caught.value.field == "account"
    with pytest.raises(InvalidArgument) as hold_error:
        holds.hold(ledger, holds.HoldRequest("h1", A, 0))
    assert hold_error.value.field == "amount_points"


def test_mr_li_earns_a_month_of_transit_and_redeems_a_supermarket_voucher(ledger: LedgerContext) -> None:
    # DOMAIN.md: two transit trips a day at 10 points = 600 points a month; a 1,000-point voucher needs more.
    trips = [
        earn(f"li-{day}-{trip}", A, 10, earned_at=START - timedelta(days=30 - day))
        for day in range(30)
        for trip in (1, 2)
    ]
    assert all(r.status is Status.POSTED for r in postings.post_transfers(ledger, trips))
    assert _available(ledger, A) == 600
    with pytest.raises(FailedPrecondition) as caught:
        holds.hold(ledger, holds.HoldRequest("voucher", A, 1000))
    assert caught.value.reason == "INSUFFICIENT_POINTS"
    holds.hold(ledger, holds.HoldRequest("top-up", A, 100))
    holds.commit_hold(ledger, "top-up", 0, REDEMPTION)
    assert _available(ledger, A) == 500


def test_ms_zhang_saves_six_months_for_the_health_check(ledger: LedgerContext) -> None:
    # DOMAIN.md: about 1,200 points a month; 7,200 after six months buys the 7,200-point health check package.
    months = [earn(f"zhang-{m}", B, 1200, earned_at=START - timedelta(days=30 * (6 - m))) for m in range(6)]
    postings.post_transfers(ledger, months)
    holds.hold(ledger, holds.HoldRequest("health-check", B, 7200))
    _, result = holds.commit_hold(ledger, "health-check", 0, REDEMPTION)
    assert result.status is Status.POSTED and len(result.lots) == 6
    assert _available(ledger, B) == 0
    _assert_conserved(ledger)
