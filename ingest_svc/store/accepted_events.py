"""Accepted events in the order they were accepted, after a position: what followers such as incentives read."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, select, tuple_

from ingest_svc.store.dialect import utc
from ingest_svc.store.tables import events


class AcceptedEvent(NamedTuple):
    partner_id: str
    event_id: str
    account_number: str
    behaviour: str
    occurred_at: datetime
    points: int
    co2e_grams: int
    accepted_at: datetime


# (accepted_at, partner_id, event_id): the position of an event in the order followers read.
Position = tuple[datetime, str, str]


def accepted_after(conn: Connection, after: Position | None, until: datetime, limit: int) -> list[AcceptedEvent]:
    """Up to `limit` events accepted after `after` (None: from the first) and no later than `until`, in order."""
    order = (events.c.accepted_at, events.c.partner_id, events.c.event_id)
    query = select(*(events.c[name] for name in AcceptedEvent._fields)).where(events.c.accepted_at <= until)
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*after))
    rows = conn.execute(query.order_by(*order).limit(limit)).all()
    return [
        AcceptedEvent(
            partner_id=row.partner_id,
            event_id=row.event_id,
            account_number=row.account_number,
            behaviour=row.behaviour,
            occurred_at=utc(row.occurred_at),
            points=int(row.points),
            co2e_grams=int(row.co2e_grams),
            accepted_at=utc(row.accepted_at),
        )
        for row in rows
    ]
