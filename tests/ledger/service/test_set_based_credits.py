"""The set-based path for credit-only batches on PostgreSQL (ADR 0102) gives exactly what the general path
gives, and checks ids optimistically (ADR 0106)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.transfers import ItemResult, Status, TransferRequest
from ledger_svc.service import audit, holds, reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import pg_credits as credit_store
from ledger_svc.store.tables import every_lot
from tests.ledger.ledger_support import (
    ISSUANCE,
    START,
    account_number,
    earn,
    spend,
)

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
        fast_results = transfers.post_transfers(fast, batch)
        general_results = transfers.post_transfers(general, batch)
        assert [_comparable(r) for r in fast_results] == [_comparable(r) for r in general_results]
        used.extend(r for r, res in zip(batch, fast_results, strict=True) if res.status is Status.POSTED)
        if number % 7 == 6:
            fast.clock.advance(hours=rng.randint(1, 30))  # type: ignore[attr-defined]
    assert reads.get_balance(fast, ISSUANCE) == reads.get_balance(general, ISSUANCE)
    for account in ACCOUNTS:
        assert reads.get_balance(fast, account) == reads.get_balance(general, account)
        assert _lots(fast, account) == _lots(general, account)
    fast_check, general_check = audit.verify_journal(fast), audit.verify_journal(general)
    assert fast_check.ok and general_check.ok
    assert fast_check.entries_checked == general_check.entries_checked
    assert audit.check_conservation(fast).balanced


def test_a_credit_batch_replayed_whole_answers_already_posted_with_the_first_lots(ledger: LedgerContext) -> None:
    batch = [earn(f"e{n}", ACCOUNTS[n % 3], 10 + n) for n in range(20)]
    first = transfers.post_transfers(ledger, batch)
    again = transfers.post_transfers(ledger, batch)
    assert {r.status for r in first} == {Status.POSTED}
    assert {r.status for r in again} == {Status.ALREADY_POSTED}
    assert [r.lots for r in again] == [r.lots for r in first]
    changed = transfers.post_transfers(ledger, [earn("e0", ACCOUNTS[0], 99), earn("e-new", ACCOUNTS[0], 1)])
    assert [(r.status, r.failure_reason) for r in changed] == [
        (Status.FAILED, "IDEMPOTENCY_KEY_REUSED"),
        (Status.POSTED, ""),
    ]
    assert audit.verify_journal(ledger).ok and audit.check_conservation(ledger).balanced


def test_a_credit_reusing_a_hold_id_is_refused(ledger: LedgerContext) -> None:
    transfers.post_transfers(ledger, [earn("e1", ACCOUNTS[0], 50)])
    holds.hold(ledger, HoldRequest("h1", ACCOUNTS[0], 10))
    results = transfers.post_transfers(ledger, [earn("h1", ACCOUNTS[1], 5), earn("e2", ACCOUNTS[1], 5)])
    assert [(r.status, r.failure_reason) for r in results] == [
        (Status.FAILED, "IDEMPOTENCY_KEY_REUSED"),
        (Status.POSTED, ""),
    ]


def test_the_same_credit_batch_racing_posts_once(ledger: LedgerContext) -> None:
    batch = [earn(f"r{n}", ACCOUNTS[n % 5], 7) for n in range(200)]
    start = threading.Barrier(4)

    def post(_: int) -> list[Status]:
        start.wait()
        return [r.status for r in transfers.post_transfers(ledger, batch)]

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(post, range(4)))
    assert sum(statuses.count(Status.POSTED) for statuses in outcomes) == 200
    assert all(set(statuses) <= {Status.POSTED, Status.ALREADY_POSTED} for statuses in outcomes)
    assert sum(reads.get_balance(ledger, account).total_points for account in ACCOUNTS[:5]) == 1400
    assert audit.verify_journal(ledger).ok and audit.check_conservation(ledger).balanced


def test_free_text_with_copy_escapes_reads_back_unchanged(ledger: LedgerContext) -> None:
    tricky = "tab\there, line\nbreak, return\r, back\\slash \\N 引用"
    posted = transfers.post_transfers(
        ledger, [earn(f"c\t{n}\\", ACCOUNTS[n], 5, reference=tricky, metadata=(("k", tricky),)) for n in range(2)]
    )
    assert {r.status for r in posted} == {Status.POSTED}
    stored = transfers.get_transfer(ledger, "c\t0\\")
    assert (stored.reference, stored.metadata_json) == (tricky, posted[0].posting.metadata_json)  # type: ignore[union-attr]
    assert audit.verify_journal(ledger).ok


def test_ids_with_array_literal_characters_are_found_again(ledger: LedgerContext) -> None:
    ids = ['q"uote', "back\\slash", "a,b", "{brace}", " spaced ", "NULL", 'both\\"', "引用"]
    batch = [earn(transfer_id, ACCOUNTS[n % 4], 3) for n, transfer_id in enumerate(ids)]
    assert {r.status for r in transfers.post_transfers(ledger, batch)} == {Status.POSTED}
    again = transfers.post_transfers(ledger, [*batch, earn("fresh", ACCOUNTS[0], 1)])
    assert [r.status for r in again] == [Status.ALREADY_POSTED] * len(ids) + [Status.POSTED]
    holds.hold(ledger, HoldRequest('h"1\\', ACCOUNTS[0], 1))
    reused = transfers.post_transfers(ledger, [earn('h"1\\', ACCOUNTS[1], 5)])
    assert [(r.status, r.failure_reason) for r in reused] == [(Status.FAILED, "IDEMPOTENCY_KEY_REUSED")]


ALICE, BOB, CAROL = (account_number(n) for n in (1, 2, 3))


def _lots_of(result: ItemResult) -> list[tuple[object, ...]]:
    return [(p.key, p.amount_points, p.lot_id) for p in result.lots]


@pytest.mark.postgres
def test_a_batch_mixing_replayed_fresh_and_reused_ids_answers_as_the_general_path(
    two_ledgers: tuple[LedgerContext, LedgerContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, general = two_ledgers
    first = [earn("e1", ALICE, 10), earn("e2", BOB, 20)]
    assert [_comparable_with_message(r) for r in transfers.post_transfers(fast, first)] == [
        _comparable_with_message(r) for r in transfers.post_transfers(general, first)
    ]
    probes = _count_calls(monkeypatch, "taken_ids")
    writes = _count_calls(monkeypatch, "copy_transfers")
    mixed = [earn("e3", CAROL, 5), earn("e1", ALICE, 10), earn("e2", BOB, 21)]
    fast_results = transfers.post_transfers(fast, mixed)
    # The optimistic attempt met the unique key and rolled back; the retry looked the ids up and wrote e3.
    assert (probes(), writes()) == (1, 2)
    assert [(r.status, r.failure_reason) for r in fast_results] == [
        (Status.POSTED, ""),
        (Status.ALREADY_POSTED, ""),
        (Status.FAILED, "IDEMPOTENCY_KEY_REUSED"),
    ]
    assert [_comparable_with_message(r) for r in fast_results] == [
        _comparable_with_message(r) for r in transfers.post_transfers(general, mixed)
    ]
    assert _lots_of(fast_results[1]) == _lots_of(transfers.post_transfers(fast, first)[0])
    assert audit.verify_journal(fast).ok and audit.check_conservation(fast).balanced


@pytest.mark.postgres
def test_a_fresh_batch_never_looks_up_posted_ids(pg_ledger: LedgerContext, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = pg_ledger
    probes = _count_calls(monkeypatch, "taken_ids")
    results = transfers.post_transfers(ledger, [earn(f"e{n}", ALICE, 1) for n in range(5)])
    assert {r.status for r in results} == {Status.POSTED}
    assert probes() == 0


@pytest.mark.postgres
def test_a_batch_sent_again_whole_is_looked_up_without_a_rolled_back_attempt(
    pg_ledger: LedgerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = pg_ledger
    batch = [earn(f"e{n}", account_number(n % 7 + 1), n + 1) for n in range(50)]
    first = transfers.post_transfers(ledger, batch)
    probes = _count_calls(monkeypatch, "taken_ids")
    writes = _count_calls(monkeypatch, "copy_transfers")
    again = transfers.post_transfers(ledger, batch)
    assert (probes(), writes()) == (1, 0)
    assert [r.status for r in again] == [Status.ALREADY_POSTED] * 50
    assert [r.posting for r in again] == [r.posting for r in first]
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.sum(every_lot.c.credited_points))).scalar_one() == sum(range(1, 51))


@pytest.mark.postgres
@pytest.mark.parametrize("hold_state", ["pending", "committed", "released"])
def test_an_id_taken_by_a_hold_gets_the_general_paths_answer(
    two_ledgers: tuple[LedgerContext, LedgerContext], hold_state: str
) -> None:
    answers = []
    for ledger in two_ledgers:
        transfers.post_transfers(ledger, [earn("e0", ALICE, 50)])
        holds.hold(ledger, HoldRequest("m-hold", ALICE, 10))
        if hold_state == "committed":
            holds.commit_hold(ledger, "m-hold", 10, "system:redemption")
        elif hold_state == "released":
            holds.release_hold(ledger, "m-hold")
        results = transfers.post_transfers(ledger, [earn("a-1", BOB, 5), earn("m-hold", BOB, 5), earn("z-1", BOB, 5)])
        answers.append([_comparable_with_message(r) for r in results])
    assert [answer[2] for answer in answers[0]] == ["", "IDEMPOTENCY_KEY_REUSED", ""]
    assert answers[0] == answers[1]


@pytest.mark.postgres
def test_a_hold_id_between_the_batchs_ids_that_none_uses_leaves_the_batch_on_the_fast_path(
    pg_ledger: LedgerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = pg_ledger
    transfers.post_transfers(ledger, [earn("e0", ALICE, 50)])
    holds.hold(ledger, HoldRequest("m-hold", ALICE, 10))
    with ledger.engine.connect() as conn:
        assert credit_store.held_or_replayed(conn, ["a-1", "z-1"]) == (False, False)
        assert credit_store.held_or_replayed(conn, ["a-1", "m-hold", "z-1"]) == (True, False)
        assert credit_store.held_or_replayed(conn, ["e0", "m-hold"]) == (True, True)
        assert credit_store.held_or_replayed(conn, ["e0", "z-1"]) == (False, True)
    fast_writes = _count_calls(monkeypatch, "copy_transfers")
    results = transfers.post_transfers(ledger, [earn("a-1", BOB, 5), earn("z-1", BOB, 5)])
    assert {r.status for r in results} == {Status.POSTED}
    assert fast_writes() == 1


def _comparable_with_message(result: ItemResult) -> tuple[object, ...]:
    posting = result.posting
    portions = [(p.key, p.amount_points) for p in result.lots]
    return (
        result.transfer_id,
        result.status,
        result.failure_reason,
        result.failure_message,
        portions,
        posting.credit_balance_after if posting else None,
    )


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> Callable[[], int]:
    calls: list[int] = []
    original = getattr(credit_store, name)

    def counted(*args: object) -> object:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(credit_store, name, counted)
    return lambda: len(calls)
