"""An earn's one lot is implied by its transfer and stored nowhere else (ADR 0106); the credit fast path's first
attempt skips the look-up of posted ids. Every reader answers as when the lot record was written."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, insert, select

from ledger_svc.domain.lots import Portion
from ledger_svc.domain.posting import ItemResult, Status, TransferRequest
from ledger_svc.service import holds, ops, postings
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import credits as credit_store
from ledger_svc.store.tables import lots, transfer_lots
from tests.ledger.ledger_support import REGION, START, MovableClock, account_number, earn, migrated_engine, spend

ALICE, BOB, CAROL = (account_number(n) for n in (1, 2, 3))
ADJUSTMENT = "system:adjustment"


@pytest.fixture
def pg_ledger(postgres_url: str, clock: MovableClock) -> Iterator[LedgerContext]:
    engine = migrated_engine(postgres_url)
    yield LedgerContext(engine, REGION, clock)
    engine.dispose()


def _lot_records(ledger: LedgerContext) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transfer_lots)).scalar_one())


def _lots_of(result: ItemResult) -> list[tuple[object, ...]]:
    return [(p.key, p.amount_points, p.lot_id) for p in result.lots]


def test_an_earn_writes_no_lot_record(ledger: LedgerContext) -> None:
    results = postings.post_transfers(ledger, [earn("e1", ALICE, 10), earn("e2", BOB, 20), earn("e3", ALICE, 5)])
    assert {r.status for r in results} == {Status.POSTED}
    assert _lot_records(ledger) == 0


def test_a_credit_with_another_code_keeps_its_lot_record(ledger: LedgerContext) -> None:
    adjust = TransferRequest("a1", ADJUSTMENT, ALICE, 10, 7)
    postings.post_transfers(ledger, [adjust])
    assert _lot_records(ledger) == 1


def test_an_earn_replayed_answers_with_the_first_lot(ledger: LedgerContext, clock: MovableClock) -> None:
    from datetime import timedelta

    batch = [earn("e1", ALICE, 10), earn("e2", ALICE, 7, earned_at=START - timedelta(days=3)), earn("e3", BOB, 4)]
    first = postings.post_transfers(ledger, batch)
    clock.advance(days=2)
    again = postings.post_transfers(ledger, batch)
    assert [r.status for r in again] == [Status.ALREADY_POSTED] * 3
    assert [_lots_of(r) for r in again] == [_lots_of(r) for r in first]
    assert all(p.lot_id is not None for r in again for p in r.lots)
    assert [r.posting for r in again] == [r.posting for r in first]


def test_get_transfer_of_an_earn_shows_the_lot_it_filled(ledger: LedgerContext) -> None:
    (posted,) = postings.post_transfers(ledger, [earn("e1", ALICE, 10, reference="event-1")])
    assert postings.get_transfer(ledger, "e1") == posted.posting


def test_an_earn_stored_with_its_lot_record_reads_from_the_record(ledger: LedgerContext) -> None:
    """Earns posted before ADR 0106 have their record; a record always wins over the implied lot."""
    (posted,) = postings.post_transfers(ledger, [earn("old", ALICE, 10)])
    assert posted.posting is not None
    (implied,) = posted.posting.credit_lots
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(transfer_lots).values(
                transfer_id="old", side="C", position=0, lot_id=implied.lot_id, amount_points=10
            )
        )
    assert postings.get_transfer(ledger, "old") == posted.posting
    # A record naming another lot (as only a record can) is what the reader answers.
    with ledger.engine.begin() as conn:
        other_id = conn.execute(
            insert(lots)
            .values(
                account=ALICE,
                earned_on=implied.key.earned_on,
                expires_at_us=implied.key.expires_at_us + 1,
                credited_points=0,
                remaining_points=0,
                expired_points=0,
            )
            .returning(lots.c.lot_id)
        ).scalar_one()
        conn.execute(transfer_lots.update().where(transfer_lots.c.transfer_id == "old").values(lot_id=other_id))
    (read,) = postings.get_transfer(ledger, "old").credit_lots
    assert (read.lot_id, read.key.expires_at_us, read.amount_points) == (other_id, implied.key.expires_at_us + 1, 10)


def test_a_ledger_with_another_validity_keeps_its_earns_lot_records(database_url: str, clock: MovableClock) -> None:
    engine = migrated_engine(database_url)
    try:
        ledger = LedgerContext(engine, REGION, clock, validity_months=12)
        first = postings.post_transfers(ledger, [earn("e1", ALICE, 10), earn("e2", BOB, 3)])
        assert _lot_records(ledger) == 2
        again = postings.post_transfers(ledger, [earn("e1", ALICE, 10)])
        assert _lots_of(again[0]) == _lots_of(first[0])
        assert postings.get_transfer(ledger, "e2") == first[1].posting
    finally:
        engine.dispose()


def test_refunds_and_spending_after_earns_answer_as_before(ledger: LedgerContext) -> None:
    postings.post_transfers(ledger, [earn("e1", ALICE, 100)])
    (spent,) = postings.post_transfers(ledger, [spend("s1", ALICE, 60)])
    refund = postings.refund_transfer(ledger, "r1", "s1", 20, "")
    assert refund.status is Status.POSTED
    assert [(p.lot_id, p.amount_points) for p in refund.lots] == [(spent.lots[0].lot_id, 20)]
    assert ops.verify_journal(ledger).ok and ops.check_conservation(ledger).balanced


def _comparable(result: ItemResult) -> tuple[object, ...]:
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


@pytest.mark.postgres
def test_a_batch_mixing_replayed_fresh_and_reused_ids_answers_as_the_general_path(
    two_ledgers: tuple[LedgerContext, LedgerContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, general = two_ledgers
    first = [earn("e1", ALICE, 10), earn("e2", BOB, 20)]
    assert [_comparable(r) for r in postings.post_transfers(fast, first)] == [
        _comparable(r) for r in postings.post_transfers(general, first)
    ]
    probes = _count_calls(monkeypatch, "taken_ids")
    writes = _count_calls(monkeypatch, "copy_transfers")
    mixed = [earn("e3", CAROL, 5), earn("e1", ALICE, 10), earn("e2", BOB, 21)]
    fast_results = postings.post_transfers(fast, mixed)
    # The optimistic attempt met the unique key and rolled back; the retry looked the ids up and wrote e3.
    assert (probes(), writes()) == (1, 2)
    assert [(r.status, r.failure_reason) for r in fast_results] == [
        (Status.POSTED, ""),
        (Status.ALREADY_POSTED, ""),
        (Status.FAILED, "IDEMPOTENCY_KEY_REUSED"),
    ]
    assert [_comparable(r) for r in fast_results] == [_comparable(r) for r in postings.post_transfers(general, mixed)]
    assert _lots_of(fast_results[1]) == _lots_of(postings.post_transfers(fast, first)[0])
    assert ops.verify_journal(fast).ok and ops.check_conservation(fast).balanced


@pytest.mark.postgres
def test_a_fresh_batch_never_looks_up_posted_ids(pg_ledger: LedgerContext, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = pg_ledger
    probes = _count_calls(monkeypatch, "taken_ids")
    results = postings.post_transfers(ledger, [earn(f"e{n}", ALICE, 1) for n in range(5)])
    assert {r.status for r in results} == {Status.POSTED}
    assert probes() == 0


@pytest.mark.postgres
def test_a_batch_sent_again_whole_is_looked_up_without_a_rolled_back_attempt(
    pg_ledger: LedgerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = pg_ledger
    batch = [earn(f"e{n}", account_number(n % 7 + 1), n + 1) for n in range(50)]
    first = postings.post_transfers(ledger, batch)
    probes = _count_calls(monkeypatch, "taken_ids")
    writes = _count_calls(monkeypatch, "copy_transfers")
    again = postings.post_transfers(ledger, batch)
    assert (probes(), writes()) == (1, 0)
    assert [r.status for r in again] == [Status.ALREADY_POSTED] * 50
    assert [r.posting for r in again] == [r.posting for r in first]
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.sum(lots.c.credited_points))).scalar_one() == sum(range(1, 51))


@pytest.mark.postgres
@pytest.mark.parametrize("hold_state", ["pending", "committed", "released"])
def test_an_id_taken_by_a_hold_gets_the_general_paths_answer(
    two_ledgers: tuple[LedgerContext, LedgerContext], hold_state: str
) -> None:
    answers = []
    for ledger in two_ledgers:
        postings.post_transfers(ledger, [earn("e0", ALICE, 50)])
        holds.hold(ledger, holds.HoldRequest("m-hold", ALICE, 10))
        if hold_state == "committed":
            holds.commit_hold(ledger, "m-hold", 10, "system:redemption")
        elif hold_state == "released":
            holds.release_hold(ledger, "m-hold")
        results = postings.post_transfers(ledger, [earn("a-1", BOB, 5), earn("m-hold", BOB, 5), earn("z-1", BOB, 5)])
        answers.append([_comparable(r) for r in results])
    assert [answer[2] for answer in answers[0]] == ["", "IDEMPOTENCY_KEY_REUSED", ""]
    assert answers[0] == answers[1]


@pytest.mark.postgres
def test_a_hold_id_between_the_batchs_ids_that_none_uses_leaves_the_batch_on_the_fast_path(
    pg_ledger: LedgerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = pg_ledger
    postings.post_transfers(ledger, [earn("e0", ALICE, 50)])
    holds.hold(ledger, holds.HoldRequest("m-hold", ALICE, 10))
    with ledger.engine.connect() as conn:
        assert credit_store.held_or_replayed(conn, ["a-1", "z-1"]) == (False, False)
        assert credit_store.held_or_replayed(conn, ["a-1", "m-hold", "z-1"]) == (True, False)
        assert credit_store.held_or_replayed(conn, ["e0", "m-hold"]) == (True, True)
        assert credit_store.held_or_replayed(conn, ["e0", "z-1"]) == (False, True)
    fast_writes = _count_calls(monkeypatch, "copy_transfers")
    results = postings.post_transfers(ledger, [earn("a-1", BOB, 5), earn("z-1", BOB, 5)])
    assert {r.status for r in results} == {Status.POSTED}
    assert fast_writes() == 1


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> Callable[[], int]:
    calls: list[int] = []
    original = getattr(credit_store, name)

    def counted(*args: object) -> object:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(credit_store, name, counted)
    return lambda: len(calls)


def test_an_earn_portion_keeps_the_stored_key_types(ledger: LedgerContext) -> None:
    (posted,) = postings.post_transfers(ledger, [earn("e1", ALICE, 10)])
    (portion,) = postings.get_transfer(ledger, "e1").credit_lots
    assert isinstance(portion, Portion)
    assert type(portion.key.earned_on) is type(posted.lots[0].key.earned_on)
    assert type(portion.lot_id) is int
