"""Queries on consent records: by request id, a page of one account's history, the histories of many accounts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, or_, select

from identity_svc.domain.consents import ConsentAction, ConsentEvent, DataCategory
from identity_svc.store.tables import consents


def consent_by_request(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(consents).where(consents.c.request_id == request_id)).first()


def insert_consent(conn: Connection, **values: Any) -> None:
    conn.execute(insert(consents).values(**values))


def insert_consents(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(consents), list(rows))


def consent_page(
    conn: Connection, account_number: str, after: tuple[datetime, int] | None, limit: int
) -> Sequence[Row[Any]]:
    """Newest first by (effective_at, id); `after` is the last (effective_at, id) of the previous page."""
    query = select(consents).where(consents.c.account_number == account_number)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(consents.c.effective_at < at, and_(consents.c.effective_at == at, consents.c.id < last_id))
        )
    query = query.order_by(consents.c.effective_at.desc(), consents.c.id.desc()).limit(limit)
    return conn.execute(query).all()


def consent_histories(conn: Connection, account_numbers: Iterable[str]) -> dict[str, list[ConsentEvent]]:
    """All consent records of many accounts in one query, oldest first; the record id orders equal times."""
    wanted = sorted(set(account_numbers))
    found: dict[str, list[ConsentEvent]] = {number: [] for number in wanted}
    if not wanted:
        return found
    query = (
        select(
            consents.c.account_number, consents.c.category, consents.c.action, consents.c.effective_at, consents.c.id
        )
        .where(consents.c.account_number.in_(wanted))
        .order_by(consents.c.account_number, consents.c.effective_at, consents.c.id)
    )
    for row in conn.execute(query):
        event = ConsentEvent(
            category=DataCategory(row.category),
            action=ConsentAction(row.action),
            effective_at=row.effective_at,
            sequence=int(row.id),
        )
        found[row.account_number].append(event)
    return found
