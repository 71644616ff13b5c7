"""The set-based path for credit-only batches on PostgreSQL gives exactly what the general path gives."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from ledger_svc.domain.posting import ItemResult, Status, TransferRequest
from ledger_svc.service import holds, ops, postings, reads
from ledger_svc.service.context import LedgerContext
from tests.ledger.ledger_support import (
    ISSUANCE,
    START,
    account_number,
    earn,
    spend,
)

pytestmark = pytest.mark.postgres
ACCOUNTS = [account_number(n) for n in range(1, 9)]


def _random_batch(rng: random.Random, number: int, used: list[TransferRequest]) -> list[TransferRequest]:
    batch: list[TransferRequest] = []
    for item in range(rng.randint(1, 40)):
        roll = rng.random()
        if used and roll < 0.08:
            batch.append(rng.choice(used))  # a replay with the same body
        elif used and roll < 0.12:
            first = rng.choice(used)
            batch.append(earn(first.transfer_id, first.credit_account, first.amount_points + 1))  # a different body
        else:
            metadata = (("source", rng.choice(["bus", "metro", "引用"])),) if rng.random() < 0.3 else ()
            batch.append(
                earn(
                    f"b{number}-{item}",
                    rng.choice(ACCOUNTS),
                    rng.randint(1, 500),
                    earned_at=START - timedelta(days=rng.choice([0, 0, 1, 40, 400])),
                    reference=f"event-{number}-{item}",
                    co2e_grams=rng.randint(0, 900),
                    metadata=metadata,
                )
            )
    if rng.random() < 0.15:  # a mixed batch: the general path in both ledgers
        batch.append(spend(f"b{number}-spend", rng.choice(ACCOUNTS), rng.randint(1, 300)))
    if rng.random() < 0.05:  # an item the general path refuses: so does the fast path's fallback
        batch.append(earn(f"b{number}-bad", ACCOUNTS[0], 0))
    return batch


def _lots(ledger: LedgerContext, account: str) -> list[tuple[object, ...]]:
    views = reads.list_lots(ledger, account, 500, "", True).lots
    return [(view.key, view.credited_points, view.remaining_points) for view in views]


def _comparable(result: ItemResult) -> tuple[object, ...]:
    posting = result.posting
    lots = [(p.key, p.amount_points) for p in result.lots]
    balance_after = posting.credit_balance_after if posting else None
    return (result.transfer_id, result.status, result.failure_reason, lots, balance_after)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_credit_batches_give_the_same_results_on_both_paths(
    two_ledgers: tuple[LedgerContext, LedgerContext], seed: int
) -> None:
    fast, general = two_ledgers
    rng = random.Random(seed)
    used: list[TransferRequest] = []
    for number in range(25):
        batch = _random_batch(rng, number, used)
        fast_results = postings.post_transfers(fast, batch)
        general_results = postings.post_transfers(general, batch)
        assert [_comparable(r) for r in fast_results] == [_comparable(r) for r in general_results]
        used.extend(r for r, res in zip(batch, fast_results, strict=True) if res.status is Status.POSTED)
        if number % 7 == 6:
            fast.clock.advance(hours=rng.randint(1, 30))  # type: ignore[attr-defined]
    assert reads.get_balance(fast, ISSUANCE) == reads.get_balance(general, ISSUANCE)
    for account in ACCOUNTS:
        assert reads.get_balance(fast, account) == reads.get_balance(general, account)
        assert _lots(fast, account) == _lots(general, account)
    fast_check, general_check = ops.verify_journal(fast), ops.verify_journal(general)
    assert fast_check.ok and general_check.ok
    assert fast_check.entries_checked == general_check.entries_checked
    assert ops.check_conservation(fast).balanced


def test_a_credit_batch_replayed_whole_answers_already_posted_with_the_first_lots(ledger: LedgerContext) -> None:
    batch = [earn(f"e{n}", ACCOUNTS[n % 3], 10 + n) for n in range(20)]
    first = postings.post_transfers(ledger, batch)
    again = postings.post_transfers(ledger, batch)
    assert {r.status for r in first} == {Status.POSTED}
    assert {r.status for r in again} == {Status.ALREADY_POSTED}
    assert [r.lots for r in again] == [r.lots for r in first]
    changed = postings.post_transfers(ledger, [earn("e0", ACCOUNTS[0], 99), earn("e-new", ACCOUNTS[0], 1)])
    assert [(r.status, r.failure_reason) for r in changed] == [
        (Status.FAILED, "IDEMPOTENCY_KEY_REUSED"),
        (Status.POSTED, ""),
    ]
    assert ops.verify_journal(ledger).ok and ops.check_conservation(ledger).balanced


def test_a_credit_reusing_a_hold_id_is_refused(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", ACCOUNTS[0], 50)])
    holds.hold(ledger, holds.HoldRequest("h1", ACCOUNTS[0], 10))
    results = postings.post_transfers(ledger, [earn("h1", ACCOUNTS[1], 5), earn("e2", ACCOUNTS[1], 5)])
    assert [(r.status, r.failure_reason) for r in results] == [
        (Status.FAILED, "IDEMPOTENCY_KEY_REUSED"),
        (Status.POSTED, ""),
    ]


def test_the_same_credit_batch_racing_posts_once(ledger: LedgerContext) -> None:
    batch = [earn(f"r{n}", ACCOUNTS[n % 5], 7) for n in range(200)]
    start = threading.Barrier(4)

    def post(_: int) -> list[Status]:
        start.wait()
        return [r.status for r in postings.post_transfers(ledger, batch)]

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(post, range(4)))
    assert sum(statuses.count(Status.POSTED) for statuses in outcomes) == 200
    assert all(set(statuses) <= {Status.POSTED, Status.ALREADY_POSTED} for statuses in outcomes)
    assert sum(reads.get_balance(ledger, account).total_points for account in ACCOUNTS[:5]) == 1400
    assert ops.verify_journal(ledger).ok and ops.check_conservation(ledger).balanced


def test_free_text_with_copy_escapes_reads_back_unchanged(ledger: LedgerContext) -> None:
    tricky = "tab\there, line\nbreak, return\r, back\\slash \\N 引用"
    posted = postings.post_transfers(
        ledger, [earn(f"c\t{n}\\", ACCOUNTS[n], 5, reference=tricky, metadata=(("k", tricky),)) for n in range(2)]
    )
    assert {r.status for r in posted} == {Status.POSTED}
    stored = postings.get_transfer(ledger, "c\t0\\")
    assert (stored.reference, stored.metadata_json) == (tricky, posted[0].posting.metadata_json)  # type: ignore[union-attr]
    assert ops.verify_journal(ledger).ok


def test_ids_with_array_literal_characters_are_found_again(ledger: LedgerContext) -> None:
    ids = ['q"uote', "back\\slash", "a,b", "{brace}", " spaced ", "NULL", 'both\\"', "引用"]
    batch = [earn(transfer_id, ACCOUNTS[n % 4], 3) for n, transfer_id in enumerate(ids)]
    assert {r.status for r in postings.post_transfers(ledger, batch)} == {Status.POSTED}
    again = postings.post_transfers(ledger, [*batch, earn("fresh", ACCOUNTS[0], 1)])
    assert [r.status for r in again] == [Status.ALREADY_POSTED] * len(ids) + [Status.POSTED]
    holds.hold(ledger, holds.HoldRequest('h"1\\', ACCOUNTS[0], 1))
    reused = postings.post_transfers(ledger, [earn('h"1\\', ACCOUNTS[1], 5)])
    assert [(r.status, r.failure_reason) for r in reused] == [(Status.FAILED, "IDEMPOTENCY_KEY_REUSED")]
