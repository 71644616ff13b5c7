"""Concurrency on real PostgreSQL: row locks in account order, retries, no overdraft under contention."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.transfers import Status
from ledger_svc.service import audit, holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from tests.ledger.ledger_support import REGION, MovableClock, account_number, earn, migrated_engine, spend

pytestmark = pytest.mark.postgres


def test_64_concurrent_debits_covering_10_give_exactly_10_successes(postgres_url: str) -> None:
    engine = migrated_engine(postgres_url)
    ledger = LedgerContext(engine, REGION, MovableClock())
    account = account_number(1)
    transfers.post_transfers(ledger, [earn("e1", account, 100)])
    start = threading.Barrier(64)

    def debit(index: int) -> Status:
        start.wait()
        return transfers.post_transfers(ledger, [spend(f"s{index}", account, 10)])[0].status

    with ThreadPoolExecutor(64) as pool:
        statuses = list(pool.map(debit, range(64)))
    assert statuses.count(Status.POSTED) == 10
    assert reads.get_balance(ledger, account).available_points == 0
    assert audit.check_conservation(ledger).balanced
    engine.dispose()


def test_crossing_transfers_and_holds_never_deadlock_or_lose_points(postgres_url: str) -> None:
    engine = migrated_engine(postgres_url)
    ledger = LedgerContext(engine, REGION, MovableClock())
    names = [account_number(n) for n in range(1, 5)]
    transfers.post_transfers(ledger, [earn(f"e{n}", name, 1000) for n, name in enumerate(names)])
    start = threading.Barrier(16)

    def work(index: int) -> None:
        start.wait()
        for step in range(10):
            a, b = names[(index + step) % 4], names[(index + step + 1) % 4]
            transfers.post_transfers(
                ledger, [spend(f"x{index}-{step}", a, 1, credit=b), spend(f"y{index}-{step}", b, 1, credit=a)]
            )
            hold_id = f"h{index}-{step}"
            holds.hold(ledger, HoldRequest(hold_id, a, 2))
            holds.commit_hold(ledger, hold_id, 1, "system:redemption")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(work, range(16)))
    result = audit.check_conservation(ledger)
    assert result.balanced, result.problems
    assert result.redeemed_points == 160
    assert audit.verify_journal(ledger).ok
    engine.dispose()
