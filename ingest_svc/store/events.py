"""Accepted events as stored: found by id (with the status their credit batch gives them), inserted, and marked when
the ledger refused one. On PostgreSQL the per-batch statements are pg.py's faster twins of the portable ones here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, literal, select, update

from ingest_svc.domain.event_rows import CREDITED, PENDING, EventRow
from ingest_svc.store import pg
from ingest_svc.store.credit_batches import POSTED
from ingest_svc.store.dialect import chunks, insert, is_postgres, utc
from ingest_svc.store.tables import credit_batches, events

# Below this many rows, COPY's extra round trips cost more time than the INSERT's per-row work saves.
COPY_MIN_ROWS = 32


def _read_events() -> Any:
    """Event rows as the service reads them, columns in EventRow's order: a PENDING event whose credit batch was
    POSTED reads CREDITED."""
    posted = (events.c.status == PENDING) & (credit_batches.c.state == POSTED)
    status = case((posted, literal(CREDITED)), else_=events.c.status).label("status")
    columns = [status if name == "status" else events.c[name] for name in EventRow._fields]
    joined = events.outerjoin(credit_batches, credit_batches.c.credit_batch_id == events.c.credit_batch_id)
    return select(*columns).select_from(joined)


# Built once, like the other per-batch statements.
_FIND_EVENTS = _read_events().where(
    events.c.partner_id == bindparam("partner_id"), events.c.event_id.in_(bindparam("ids"))
)
_INSERT_EVENTS: dict[str, Any] = {}  # the portable INSERT .. ON CONFLICT DO NOTHING RETURNING, per dialect


def find_events(conn: Connection, partner_id: str, event_ids: Sequence[str]) -> dict[str, EventRow]:
    """The stored events among `event_ids`, by id."""
    if not event_ids:
        return {}
    if is_postgres(conn):
        return _by_id(pg.find_events(conn, partner_id, event_ids))
    return find_events_portably(conn, partner_id, event_ids)


def find_events_portably(conn: Connection, partner_id: str, event_ids: Sequence[str]) -> dict[str, EventRow]:
    """find_events on any database, by chunks of ids."""
    found: dict[str, EventRow] = {}
    for chunk in chunks(event_ids):
        found.update(_by_id(conn.execute(_FIND_EVENTS, {"partner_id": partner_id, "ids": list(chunk)})))
    return found


def insert_events(conn: Connection, rows: Sequence[EventRow], surely_new: bool = False) -> set[str]:
    """Inserts accepted events; returns the ids actually inserted (a concurrent twin makes one a no-op).

    `surely_new`: nothing suggests any exists, so PostgreSQL writes a batch by COPY, and one that does exist fails
    the transaction with an IntegrityError (the caller redoes it without this promise).
    """
    if not rows:
        return set()
    if not is_postgres(conn):
        return insert_events_portably(conn, rows)
    if surely_new and len(rows) >= COPY_MIN_ROWS:
        pg.copy_events(conn, rows)
        return {row.event_id for row in rows}
    return pg.insert_events(conn, rows)


def insert_events_portably(conn: Connection, rows: Sequence[EventRow]) -> set[str]:
    """insert_events on any database, skipping events that exist."""
    statement = _INSERT_EVENTS.get(conn.dialect.name)
    if statement is None:
        statement = insert(conn, events).on_conflict_do_nothing().returning(events.c.event_id)
        _INSERT_EVENTS[conn.dialect.name] = statement
    return {row.event_id for row in conn.execute(statement, [row._asdict() for row in rows])}


def set_status(conn: Connection, partner_id: str, event_ids: Sequence[str], status: str) -> None:
    """Only for the rare per-event outcome (LEDGER_FAILED): crediting marks the whole credit batch instead."""
    if not event_ids:
        return
    statement = (
        update(events)
        .where(events.c.partner_id == partner_id, events.c.event_id.in_(bindparam("ids")))
        .values(status=status)
    )
    for chunk in chunks(event_ids):
        conn.execute(statement, {"ids": list(chunk)})


def _by_id(rows: Iterable[Sequence[Any]]) -> dict[str, EventRow]:
    """Rows read in EventRow's column order, their times as aware UTC."""
    found: dict[str, EventRow] = {}
    for values in rows:
        row = EventRow._make(values)
        found[row.event_id] = row._replace(occurred_at=utc(row.occurred_at), accepted_at=utc(row.accepted_at))
    return found


def account_events(conn: Connection, account_number: str, after: tuple[str, str] | None, limit: int) -> list[EventRow]:
    """Up to `limit` events of one account, ordered by (partner_id, event_id), after the key `after` (the account's
    index, migration 0005, serves it)."""
    query = _read_events().where(events.c.account_number == account_number)
    if after is not None:
        partner_id, event_id = after
        query = query.where(
            (events.c.partner_id > partner_id) | ((events.c.partner_id == partner_id) & (events.c.event_id > event_id))
        )
    query = query.order_by(events.c.partner_id, events.c.event_id).limit(limit)
    return [
        row._replace(occurred_at=utc(row.occurred_at), accepted_at=utc(row.accepted_at))
        for row in map(EventRow._make, conn.execute(query))
    ]
