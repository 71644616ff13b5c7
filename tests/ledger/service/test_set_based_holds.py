"""Holds on PostgreSQL's few-statement path (ADR 0103) answer and write exactly what the general path does."""

from __future__ import annotations

import dataclasses
import functools
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from ledger_svc.domain.holds import Hold, HoldRequest
from ledger_svc.domain.transfers import ItemResult
from ledger_svc.service import audit, holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import DomainError
from tests.ledger.ledger_support import EXPIRY, ISSUANCE, REDEMPTION, START, account_number, earn, spend

pytestmark = pytest.mark.postgres
ACCOUNTS = [account_number(n) for n in range(1, 6)]


def _hold_view(hold: Hold) -> tuple[object, ...]:
    return (
        hold.hold_id,
        hold.account,
        hold.amount_points,
        hold.state,
        hold.expires_at_us,
        hold.code,
        hold.committed_points,
        hold.credit_account,
        hold.reference,
        hold.metadata_json,
        [(p.key, p.amount_points) for p in hold.lots],
    )


def _result_view(result: ItemResult) -> tuple[object, ...]:
    posting = result.posting
    assert posting is not None
    return (
        result.transfer_id,
        result.status,
        posting.amount_points,
        posting.debit_balance_after,
        posting.credit_balance_after,
        posting.fingerprint,
        [(p.key, p.amount_points) for p in posting.debit_lots],
        [(p.key, p.amount_points) for p in posting.credit_lots],
    )


def _outcome(call: Callable[[LedgerContext], object], ledger: LedgerContext) -> object:
    """What a call answered, comparable across ledgers: its value's view, or the error's class and reason."""
    try:
        value = call(ledger)
    except DomainError as error:
        return (type(error).__name__, error.reason, error.message)
    if isinstance(value, Hold):
        return _hold_view(value)
    if isinstance(value, tuple):
        hold, result = value
        return (_hold_view(hold), _result_view(result))
    return value


def _read_hold(ledger: LedgerContext, hold_id: str) -> Hold:
    return holds.get_hold(ledger, hold_id)


def _lots(ledger: LedgerContext, account: str) -> list[tuple[object, ...]]:
    views = reads.list_lots(ledger, account, 500, "", True).lots
    return [(view.key, view.credited_points, view.remaining_points) for view in views]


def _step(rng: random.Random, number: int, hold_ids: list[str]) -> tuple[str, Callable[[LedgerContext], object]]:
    roll = rng.random()
    account = rng.choice(ACCOUNTS)
    if roll < 0.2 or (roll >= 0.45 and not hold_ids):
        days = rng.choice([0, 3, 700, 729])
        item = earn(f"e{number}", account, rng.randint(20, 300), earned_at=START - timedelta(days=days))
        return "earn", lambda ledger: transfers.post_transfers(ledger, [item])[0].status
    if roll < 0.45:
        request = HoldRequest(
            f"h{number}",
            account,
            rng.randint(1, 100),
            timeout_us=rng.choice([0, 60_000_000, 3_600_000_000]),
            reference=rng.choice(["", "voucher-7"]),
            metadata=(("shop", "超市"),) if rng.random() < 0.3 else (),
        )
        hold_ids.append(request.hold_id)
        if rng.random() < 0.3:  # held and committed in one call (ADR 0122), to the system or to a user
            commit_to = rng.choice([REDEMPTION, REDEMPTION, rng.choice(ACCOUNTS)])
            at_once = dataclasses.replace(request, commit_to_account=commit_to)
            return "hold and commit", lambda ledger: holds.hold_and_commit(ledger, at_once)
        return "hold", lambda ledger: holds.hold(ledger, request)
    hold_id = rng.choice(hold_ids)
    if roll < 0.5:  # a replay of a hold: same body answers the first hold, another body is refused
        amount = rng.choice([30, 31])
        return "hold again", lambda ledger: holds.hold(ledger, HoldRequest(hold_id, account, amount))
    if roll < 0.72:
        amount = rng.choice([0, 0, 1, 20, 200])
        credit = rng.choice([REDEMPTION, REDEMPTION, REDEMPTION, rng.choice(ACCOUNTS)])
        return "commit", lambda ledger: holds.commit_hold(ledger, hold_id, amount, credit)
    if roll < 0.84:
        return "release", lambda ledger: holds.release_hold(ledger, hold_id)
    if roll < 0.9:
        item = spend(f"s{number}", account, rng.randint(1, 60))
        return "spend", lambda ledger: transfers.post_transfers(ledger, [item])[0].failure_reason
    if roll < 0.94:
        return "sweep", lambda ledger: holds.sweep_expired_holds(ledger, 0)
    minutes = rng.choice([1, 2, 90, 60 * 24])
    return "clock", lambda ledger: ledger.clock.advance(minutes=minutes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_hold_sequences_give_the_same_answers_and_ledger_on_both_paths(
    two_ledgers: tuple[LedgerContext, LedgerContext], seed: int
) -> None:
    fast, general = two_ledgers
    rng = random.Random(seed)
    hold_ids: list[str] = []
    for number in range(160):
        kind, call = _step(rng, number, hold_ids)
        if kind == "clock":
            call(fast)  # one clock for both ledgers
            continue
        assert _outcome(call, fast) == _outcome(call, general), f"step {number}: {kind}"
    for hold_id in sorted(set(hold_ids)):
        read = functools.partial(_read_hold, hold_id=hold_id)
        assert _outcome(read, fast) == _outcome(read, general)
    for account in [*ACCOUNTS, ISSUANCE, REDEMPTION, EXPIRY]:
        assert reads.get_balance(fast, account) == reads.get_balance(general, account)
    for account in ACCOUNTS:
        assert _lots(fast, account) == _lots(general, account)
    assert holds.sweep_expired_holds(fast, 0) == holds.sweep_expired_holds(general, 0)
    fast_check, general_check = audit.verify_journal(fast), audit.verify_journal(general)
    assert fast_check.ok and general_check.ok
    assert (fast_check.blocks_checked, fast_check.entries_checked) == (
        general_check.blocks_checked,
        general_check.entries_checked,
    )
    assert audit.check_conservation(fast).balanced and audit.check_conservation(general).balanced


def test_racing_commits_and_releases_resolve_each_hold_exactly_once(ledger: LedgerContext) -> None:
    account = ACCOUNTS[0]
    transfers.post_transfers(ledger, [earn("e1", account, 1000)])
    for number in range(12):
        holds.hold(ledger, HoldRequest(f"h{number}", account, 40))
    start = threading.Barrier(3)

    def resolve(how: int, hold_id: str) -> str:
        start.wait()
        try:
            if how == 2:
                return holds.release_hold(ledger, hold_id).state.name
            return holds.commit_hold(ledger, hold_id, 0, REDEMPTION)[1].status.name
        except DomainError as error:
            return error.reason

    with ThreadPoolExecutor(3) as pool:
        for number in range(12):
            outcomes = sorted(pool.map(resolve, range(3), [f"h{number}"] * 3))
            # Whoever locks first resolves the hold; the others see it resolved.
            committed_first = ["ALREADY_POSTED", "HOLD_COMMITTED", "POSTED"]
            assert outcomes in (committed_first, ["HOLD_RELEASED", "HOLD_RELEASED", "RELEASED"])
    redeemed = sum(1 for number in range(12) if holds.get_hold(ledger, f"h{number}").state.name == "COMMITTED")
    assert reads.get_balance(ledger, account).total_points == 1000 - 40 * redeemed
    assert reads.get_balance(ledger, account).held_points == 0
    assert audit.verify_journal(ledger).ok and audit.check_conservation(ledger).balanced


def test_concurrent_holds_covering_ten_give_exactly_ten(ledger: LedgerContext) -> None:
    account = ACCOUNTS[1]
    transfers.post_transfers(ledger, [earn("e1", account, 60), earn("e2", account, 40, earned_at=START - timedelta(1))])
    start = threading.Barrier(8)

    def place(number: int) -> str:
        if number < 8:
            start.wait()
        try:
            return holds.hold(ledger, HoldRequest(f"h{number}", account, 10)).state.name
        except DomainError as error:
            return error.reason

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(place, range(32)))
    assert outcomes.count("PENDING") == 10 and outcomes.count("INSUFFICIENT_POINTS") == 22
    balance = reads.get_balance(ledger, account)
    assert (balance.available_points, balance.held_points, balance.total_points) == (0, 100, 100)
    assert audit.check_conservation(ledger).balanced


def test_concurrent_holds_committed_at_once_covering_ten_spend_exactly_ten(ledger: LedgerContext) -> None:
    account = ACCOUNTS[2]
    transfers.post_transfers(ledger, [earn("e1", account, 60), earn("e2", account, 40, earned_at=START - timedelta(1))])
    start = threading.Barrier(8)

    def redeem(number: int) -> str:
        if number < 8:
            start.wait()
        request = HoldRequest(f"h{number}", account, 10, commit_to_account=REDEMPTION)
        try:
            placed, result = holds.hold_and_commit(ledger, request)
        except DomainError as error:
            return error.reason
        assert placed.state.name == "COMMITTED" and placed.committed_points == 10
        return result.status.name

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(redeem, range(32)))
    assert outcomes.count("POSTED") == 10 and outcomes.count("INSUFFICIENT_POINTS") == 22
    balance = reads.get_balance(ledger, account)
    assert (balance.available_points, balance.held_points, balance.total_points) == (0, 0, 0)
    assert reads.get_balance(ledger, REDEMPTION).total_points == 100
    assert audit.verify_journal(ledger).ok and audit.check_conservation(ledger).balanced


def test_a_hold_committed_at_once_answers_its_repeat_and_refuses_another_body(ledger: LedgerContext) -> None:
    account = ACCOUNTS[3]
    transfers.post_transfers(ledger, [earn("e1", account, 100)])
    request = HoldRequest("h1", account, 30, reference="r-1", commit_to_account=REDEMPTION)
    first_hold, first = holds.hold_and_commit(ledger, request)
    again_hold, again = holds.hold_and_commit(ledger, request)
    assert (first.status.name, again.status.name) == ("POSTED", "ALREADY_POSTED")
    assert _hold_view(again_hold) == _hold_view(first_hold)
    assert _result_view(again)[2:] == _result_view(first)[2:]
    with pytest.raises(DomainError) as plain:  # the same id without the commit is another body
        holds.hold(ledger, dataclasses.replace(request, commit_to_account=""))
    assert plain.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(DomainError) as elsewhere:
        holds.hold_and_commit(ledger, dataclasses.replace(request, commit_to_account=account_number(9)))
    assert elsewhere.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert reads.get_balance(ledger, account).total_points == 70


def test_a_plain_hold_is_not_committed_by_a_request_that_names_an_account(ledger: LedgerContext) -> None:
    account = ACCOUNTS[4]
    transfers.post_transfers(ledger, [earn("e1", account, 100)])
    holds.hold(ledger, HoldRequest("h1", account, 30))
    with pytest.raises(DomainError) as refused:
        holds.hold_and_commit(ledger, HoldRequest("h1", account, 30, commit_to_account=REDEMPTION))
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert holds.get_hold(ledger, "h1").state.name == "PENDING"
