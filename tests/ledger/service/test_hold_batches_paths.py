"""Batched holds on PostgreSQL's array statements (ADR 0132) answer and write exactly what the same items sent one by
one through the unary calls do on the general path; concurrent batches over the same accounts neither deadlock nor
lose a point."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

import pytest

from ledger_svc.domain.holds import CommitItem, HoldOutcome, HoldRequest, ItemStatus, Refused
from ledger_svc.service import audit, hold_batches, holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import DomainError, InvalidArgument
from tests.ledger.ledger_support import EXPIRY, ISSUANCE, REDEMPTION, START, account_number, earn, spend
from tests.ledger.service.test_set_based_holds import _hold_view, _lots, _result_view

pytestmark = pytest.mark.postgres
ACCOUNTS = [account_number(n) for n in range(1, 6)]


def _batch_view(outcome: HoldOutcome) -> object:
    if outcome.error is not None:
        return (type(outcome.error).__name__, outcome.error.reason, outcome.error.message)
    assert outcome.hold is not None
    if outcome.result is not None:
        return (_hold_view(outcome.hold), _result_view(outcome.result))
    return _hold_view(outcome.hold)


def _unary_view(call: Callable[[], object]) -> object:
    try:
        value = call()
    except DomainError as error:
        return (type(error).__name__, error.reason, error.message)
    if isinstance(value, tuple):
        return (_hold_view(value[0]), _result_view(value[1]))
    return _hold_view(value)  # type: ignore[arg-type]


def _hold_items(rng: random.Random, number: int, hold_ids: list[str]) -> list[HoldRequest | Refused]:
    items: list[HoldRequest | Refused] = []
    for position in range(rng.randint(1, 8)):
        roll = rng.random()
        if roll < 0.15 and hold_ids:  # a repeat, or the id with another body
            hold_id = rng.choice(hold_ids)
            items.append(HoldRequest(hold_id, rng.choice(ACCOUNTS), rng.choice([30, 31])))
            continue
        if roll < 0.2:
            items.append(Refused(f"bad{number}-{position}", InvalidArgument("timeout", "must not be negative")))
            continue
        hold_id = f"h{number}-{position}" if rng.random() < 0.9 or not items else items[-1].hold_id
        commit_to = rng.choice(["", "", REDEMPTION, REDEMPTION, rng.choice(ACCOUNTS)])
        account = rng.choice(ACCOUNTS)
        items.append(
            HoldRequest(
                hold_id,
                account,
                rng.choice([0, 1, 20, 30, 80, 150]),
                timeout_us=rng.choice([0, 60_000_000]),
                reference=rng.choice(["", "voucher-7"]),
                commit_to_account="" if commit_to == account else commit_to,
            )
        )
        hold_ids.append(hold_id)
    return items


def _unary_hold(ledger: LedgerContext, item: HoldRequest | Refused) -> object:
    if isinstance(item, Refused):
        return (type(item.error).__name__, item.error.reason, item.error.message)
    if item.commit_to_account:
        return _unary_view(lambda: holds.hold_and_commit(ledger, item))
    return _unary_view(lambda: holds.hold(ledger, item))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_batches_answer_and_write_as_their_items_one_by_one(
    two_ledgers: tuple[LedgerContext, LedgerContext], seed: int
) -> None:
    batched, one_by_one = two_ledgers
    rng = random.Random(seed)
    hold_ids: list[str] = ["e0"]
    for number in range(60):
        roll = rng.random()
        if roll < 0.2:
            days = rng.choice([0, 3, 729])
            item = earn(
                f"e{number}", rng.choice(ACCOUNTS), rng.randint(20, 300), earned_at=START - timedelta(days=days)
            )
            posted = [transfers.post_transfers(ledger, [item])[0] for ledger in two_ledgers]
            assert _result_view(posted[0]) == _result_view(posted[1])  # (lot ids differ between the databases)
        elif roll < 0.6:
            items = _hold_items(rng, number, hold_ids)
            answers = [_batch_view(o) for o in hold_batches.hold_batch(batched, items)]
            assert answers == [_unary_hold(one_by_one, item) for item in items], f"step {number}"
        elif roll < 0.8:
            commits = [
                CommitItem(rng.choice(hold_ids), rng.choice([0, 0, 5, 200]), rng.choice([REDEMPTION, *ACCOUNTS]))
                for _ in range(rng.randint(1, 6))
            ]
            answers = [_batch_view(o) for o in hold_batches.commit_holds(batched, commits)]
            expected = [
                _unary_view(partial(holds.commit_hold, one_by_one, c.hold_id, c.amount_points, c.credit_account))
                for c in commits
            ]
            assert answers == expected, f"step {number}"
        elif roll < 0.9:
            ids = [rng.choice(hold_ids) for _ in range(rng.randint(1, 4))]
            answers = [_batch_view(o) for o in hold_batches.release_holds(batched, ids)]
            assert answers == [_unary_view(partial(holds.release_hold, one_by_one, i)) for i in ids]
        elif roll < 0.95:
            item = spend(f"s{number}", rng.choice(ACCOUNTS), rng.randint(1, 60))
            assert transfers.post_transfers(batched, [item])[0].status == (
                transfers.post_transfers(one_by_one, [item])[0].status
            )
        else:
            batched.clock.advance(minutes=rng.choice([2, 90]))  # type: ignore[attr-defined]  # one clock for both
    holds.sweep_expired_holds(batched, 0)
    holds.sweep_expired_holds(one_by_one, 0)
    for account in [*ACCOUNTS, ISSUANCE, REDEMPTION, EXPIRY]:
        assert reads.get_balance(batched, account) == reads.get_balance(one_by_one, account)
    for account in ACCOUNTS:
        assert _lots(batched, account) == _lots(one_by_one, account)
    checks = audit.verify_journal(batched), audit.verify_journal(one_by_one)
    assert all(check.ok for check in checks) and checks[0].entries_checked == checks[1].entries_checked
    assert audit.check_conservation(batched).balanced and audit.check_conservation(one_by_one).balanced


def test_concurrent_batches_over_the_same_accounts_spend_exactly_what_there_is(pg_ledger: LedgerContext) -> None:
    """Eight clients send batches over the same five accounts in different orders (each with 100 points): exactly
    ten holds of 10 succeed per account, whatever the interleaving, and nothing deadlocks."""
    transfers.post_transfers(pg_ledger, [earn(f"e{n}", account, 100) for n, account in enumerate(ACCOUNTS)])
    start = threading.Barrier(8)

    def client(c: int) -> list[HoldOutcome]:
        rng = random.Random(c)
        start.wait()
        outcomes: list[HoldOutcome] = []
        for b in range(4):
            accounts = [rng.choice(ACCOUNTS) for _ in range(12)]
            items = [
                HoldRequest(f"c{c}-{b}-{i}", account, 10, commit_to_account=REDEMPTION if i % 2 else "")
                for i, account in enumerate(accounts)
            ]
            outcomes.extend(hold_batches.hold_batch(pg_ledger, items))
        return outcomes

    with ThreadPoolExecutor(8) as pool:
        outcomes = [o for batch in pool.map(client, range(8)) for o in batch]
    done = [o for o in outcomes if o.status is ItemStatus.DONE]
    assert len(done) == 10 * len(ACCOUNTS)
    assert {o.error.reason for o in outcomes if o.error is not None} == {"INSUFFICIENT_POINTS"}
    committed = sum(10 for o in done if o.result is not None)
    for account in ACCOUNTS:
        balance = reads.get_balance(pg_ledger, account)
        assert balance.available_points == 0
    assert reads.get_balance(pg_ledger, REDEMPTION).total_points == committed
    pending = [o.hold_id for o in done if o.result is None]
    released = hold_batches.release_holds(pg_ledger, pending[: len(pending) // 2])
    assert all(o.status is ItemStatus.DONE for o in released)
    committed_later = hold_batches.commit_holds(
        pg_ledger, [CommitItem(hold_id, 0, REDEMPTION) for hold_id in pending[len(pending) // 2 :]]
    )
    assert all(o.status is ItemStatus.DONE for o in committed_later)
    total = sum(reads.get_balance(pg_ledger, account).total_points for account in ACCOUNTS)
    assert total == 100 * len(ACCOUNTS) - reads.get_balance(pg_ledger, REDEMPTION).total_points
    assert total == 10 * (len(pending) // 2)
    assert audit.verify_journal(pg_ledger).ok and audit.check_conservation(pg_ledger).balanced
