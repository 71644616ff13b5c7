"""An earn's one lot is implied by its transfer and stored nowhere else (ADR 0106): the journal writes no lot record
for it, and every reader answers as when the record was written."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from ledger_svc.domain.lots import Portion
from ledger_svc.domain.transfers import ItemResult, Status, TransferRequest
from ledger_svc.service import reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.accounts import next_lot_id
from ledger_svc.store.tables import every_lot, recent_lots, transfer_lots
from tests.ledger.ledger_support import REGION, START, MovableClock, account_number, earn, migrated_engine

ALICE, BOB, CAROL = (account_number(n) for n in (1, 2, 3))
ADJUSTMENT = "system:adjustment"


def _lot_records(ledger: LedgerContext) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transfer_lots)).scalar_one())


def _lots_of(result: ItemResult) -> list[tuple[object, ...]]:
    return [(p.key, p.amount_points, p.lot_id) for p in result.lots]


def test_an_earn_writes_no_lot_record(ledger: LedgerContext) -> None:
    results = transfers.post_transfers(ledger, [earn("e1", ALICE, 10), earn("e2", BOB, 20), earn("e3", ALICE, 5)])
    assert {r.status for r in results} == {Status.POSTED}
    assert _lot_records(ledger) == 0


def test_a_credit_with_another_code_keeps_its_lot_record(ledger: LedgerContext) -> None:
    adjust = TransferRequest("a1", ADJUSTMENT, ALICE, 10, 7)
    transfers.post_transfers(ledger, [adjust])
    assert _lot_records(ledger) == 1


def test_an_earn_replayed_answers_with_the_first_lot(ledger: LedgerContext, clock: MovableClock) -> None:
    from datetime import timedelta

    batch = [earn("e1", ALICE, 10), earn("e2", ALICE, 7, earned_at=START - timedelta(days=3)), earn("e3", BOB, 4)]
    first = transfers.post_transfers(ledger, batch)
    clock.advance(days=2)
    again = transfers.post_transfers(ledger, batch)
    assert [r.status for r in again] == [Status.ALREADY_POSTED] * 3
    assert [_lots_of(r) for r in again] == [_lots_of(r) for r in first]
    assert all(p.lot_id is not None for r in again for p in r.lots)
    assert [r.posting for r in again] == [r.posting for r in first]


def test_get_transfer_of_an_earn_shows_the_lot_it_filled(ledger: LedgerContext) -> None:
    (posted,) = transfers.post_transfers(ledger, [earn("e1", ALICE, 10, reference="event-1")])
    assert transfers.get_transfer(ledger, "e1") == posted.posting


def test_an_earn_stored_with_its_lot_record_reads_from_the_record(ledger: LedgerContext) -> None:
    """Earns posted before ADR 0106 have their record; a record always wins over the implied lot."""
    (posted,) = transfers.post_transfers(ledger, [earn("old", ALICE, 10)])
    assert posted.posting is not None
    (implied,) = posted.posting.credit_lots
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(transfer_lots).values(
                transfer_id="old", side="C", position=0, lot_id=implied.lot_id, amount_points=10
            )
        )
    assert transfers.get_transfer(ledger, "old") == posted.posting
    # A record naming another lot (as only a record can) is what the reader answers.
    with ledger.engine.begin() as conn:
        # The account's lots are recent (ADR 0137): the other lot goes beside its implied one.
        # SQLite has no shared sequence: the id is the store's to give (store/accounts.py).
        given = {"lot_id": next_lot_id(conn)} if conn.dialect.name == "sqlite" else {}
        other_id = conn.execute(
            insert(recent_lots)
            .values(
                **given,
                account=ALICE,
                earned_on=implied.key.earned_on,
                expires_at_us=implied.key.expires_at_us + 1,
                credited_points=0,
                remaining_points=0,
                expired_points=0,
            )
            .returning(recent_lots.c.lot_id)
        ).scalar_one()
        conn.execute(transfer_lots.update().where(transfer_lots.c.transfer_id == "old").values(lot_id=other_id))
    (read,) = transfers.get_transfer(ledger, "old").credit_lots
    assert (read.lot_id, read.key.expires_at_us, read.amount_points) == (other_id, implied.key.expires_at_us + 1, 10)


def test_a_ledger_with_another_validity_keeps_its_earns_lot_records(database_url: str, clock: MovableClock) -> None:
    engine = migrated_engine(database_url)
    try:
        ledger = LedgerContext(engine, REGION, clock, validity_months=12)
        first = transfers.post_transfers(ledger, [earn("e1", ALICE, 10), earn("e2", BOB, 3)])
        assert _lot_records(ledger) == 2
        again = transfers.post_transfers(ledger, [earn("e1", ALICE, 10)])
        assert _lots_of(again[0]) == _lots_of(first[0])
        assert transfers.get_transfer(ledger, "e2") == first[1].posting
    finally:
        engine.dispose()


def test_an_earn_portion_keeps_the_stored_key_types(ledger: LedgerContext) -> None:
    (posted,) = transfers.post_transfers(ledger, [earn("e1", ALICE, 10)])
    (portion,) = transfers.get_transfer(ledger, "e1").credit_lots
    assert isinstance(portion, Portion)
    assert type(portion.key.earned_on) is type(posted.lots[0].key.earned_on)
    assert type(portion.lot_id) is int


def test_an_expiry_writes_no_lot_record_and_reads_the_lot_its_reference_names(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    """An expiry's one lot is named by its reference (ADR 0130): no record on either sweep, the same posting read."""
    from datetime import timedelta

    from ledger_svc.service import expiry

    transfers.post_transfers(ledger, [earn("e1", ALICE, 10, earned_at=START - timedelta(days=701)), earn("e2", BOB, 3)])
    clock.advance(days=40)
    assert expiry.expire_points(ledger, None, 0, 0).lots_expired == 1
    assert _lot_records(ledger) == 0
    with ledger.engine.connect() as conn:
        (lot,) = conn.execute(select(every_lot).where(every_lot.c.account == ALICE)).all()
    posting = transfers.get_transfer(ledger, f"expire:{lot.lot_id}:0")
    assert posting.reference == f"lot:{lot.lot_id}"
    assert posting.credit_lots == []
    assert [(p.key.expires_at_us, p.key.earned_on, p.amount_points, p.lot_id) for p in posting.debit_lots] == [
        (lot.expires_at_us, lot.earned_on, 10, lot.lot_id)
    ]
    # Left out of ix_transfers_credit on PostgreSQL (ADR 0130), the expiry still shows on both sides' statements.
    for account in (ALICE, "system:expiry"):
        entries = reads.list_statement_entries(ledger, account, 10, "", [], 0, 0).entries
        assert posting.transfer_id in [entry.transfer_id for entry in entries]
