"""The set-based expiry sweep on PostgreSQL writes exactly what the general sweep writes."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta

import pytest

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.transfers import Status
from ledger_svc.service import audit, expiry, holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from service_kit.errors import DomainError
from tests.ledger.ledger_support import EXPIRY, START, account_number, earn, spend

pytestmark = pytest.mark.postgres
ACCOUNTS = [account_number(n) for n in range(1, 7)]


def _statement(ledger: LedgerContext, account: str) -> list[tuple[object, ...]]:
    entries = reads.list_statement_entries(ledger, account, 500, "", [], 0, 0).entries
    return [(e.transfer_id, e.amount_points, e.balance_after_points, e.reference) for e in entries]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_ledgers_swept_both_ways_end_the_same(
    two_ledgers: tuple[LedgerContext, LedgerContext], seed: int
) -> None:
    fast, general = two_ledgers
    rng = random.Random(seed)
    for number in range(30):
        batch = [
            earn(f"e{number}-{item}", rng.choice(ACCOUNTS), rng.randint(1, 90), earned_at=START - timedelta(days=d))
            for item, d in enumerate(rng.choices([0, 5, 300, 700, 725], k=rng.randint(1, 8)))
        ]
        if rng.random() < 0.4:
            batch.append(spend(f"s{number}", rng.choice(ACCOUNTS), rng.randint(1, 60)))
        for ledger in (fast, general):
            transfers.post_transfers(ledger, batch)
    for number, account in enumerate(ACCOUNTS[:3]):
        for ledger in (fast, general):
            with contextlib.suppress(DomainError):  # not enough points: the same on both
                holds.hold(ledger, HoldRequest(f"h{number}", account, 5))
    fast.clock.advance(days=20)  # type: ignore[attr-defined]
    fast_outcome = expiry.expire_points(fast, None, batch_size=7, max_batches=0)
    general_outcome = expiry.expire_points(general, None, batch_size=7, max_batches=0)
    assert fast_outcome == general_outcome
    assert fast_outcome.lots_expired > 0
    assert expiry.expire_points(fast, None, batch_size=7, max_batches=0).lots_expired == 0  # idempotent per day
    for account in ACCOUNTS:
        assert reads.get_balance(fast, account) == reads.get_balance(general, account)
        assert _statement(fast, account) == _statement(general, account)
    assert reads.get_balance(fast, EXPIRY) == reads.get_balance(general, EXPIRY)
    for ledger in (fast, general):
        assert audit.verify_journal(ledger).ok
        assert audit.check_conservation(ledger).balanced, audit.check_conservation(ledger).problems


def test_a_set_based_sweep_stops_after_max_batches_and_resumes(ledger: LedgerContext) -> None:
    old = START - timedelta(days=740)
    results = transfers.post_transfers(ledger, [earn(f"e{n}", ACCOUNTS[n % 6], 10, earned_at=old) for n in range(30)])
    assert {r.status for r in results} == {Status.FAILED}  # already expired: refused
    transfers.post_transfers(
        ledger, [earn(f"f{n}", ACCOUNTS[n % 6], 10, earned_at=START - timedelta(days=n)) for n in range(30)]
    )
    ledger.clock.advance(days=735)  # type: ignore[attr-defined]
    first = expiry.expire_points(ledger, None, batch_size=4, max_batches=2)
    assert (first.lots_expired, first.done) == (8, False)
    rest = expiry.expire_points(ledger, None, batch_size=4, max_batches=0)
    assert rest.done and first.lots_expired + rest.lots_expired == 30
    assert audit.check_conservation(ledger).balanced and audit.verify_journal(ledger).ok


def test_batches_swept_side_by_side_end_as_one_at_a_time(two_ledgers: tuple[LedgerContext, LedgerContext]) -> None:
    fast, general = two_ledgers
    many = [account_number(n) for n in range(100, 160)]
    for day in (0, 1, 2):
        batch = [
            earn(f"e{day}-{n}", account, 10 + n, earned_at=START - timedelta(days=day))
            for n, account in enumerate(many)
        ]
        for ledger in (fast, general):
            transfers.post_transfers(ledger, batch)
    fast.clock.advance(days=735)  # type: ignore[attr-defined]
    # Batches of 9 lots: those within a day share no account (they run side by side), those across days may.
    fast_outcome = expiry.expire_points(fast, None, batch_size=9, max_batches=0)
    assert fast_outcome == expiry.expire_points(general, None, batch_size=9, max_batches=0)
    assert (fast_outcome.lots_expired, fast_outcome.done) == (180, True)
    for account in many:
        assert _statement(fast, account) == _statement(general, account)
        assert reads.get_balance(fast, account) == reads.get_balance(general, account)
    for ledger in (fast, general):
        assert audit.verify_journal(ledger).ok and audit.check_conservation(ledger).balanced
