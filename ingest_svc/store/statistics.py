"""Daily statistics per region, behaviour and CST day: added to by each recording transaction, read by staff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from ingest_svc.domain.scoring import DailyTotal
from ingest_svc.store.dialect import insert
from ingest_svc.store.tables import daily_stats

_UPSERTS: dict[str, Any] = {}


def _upsert(conn: Connection) -> Any:
    """Built once per dialect: constructing the upsert (and its cache key) per batch cost more than running it."""
    statement = _UPSERTS.get(conn.dialect.name)
    if statement is None:
        statement = insert(conn, daily_stats)
        statement = _UPSERTS[conn.dialect.name] = statement.on_conflict_do_update(
            index_elements=[daily_stats.c.region_code, daily_stats.c.behaviour, daily_stats.c.day],
            set_={
                "events": daily_stats.c.events + statement.excluded.events,
                "points": daily_stats.c.points + statement.excluded.points,
                "co2e_grams": daily_stats.c.co2e_grams + statement.excluded.co2e_grams,
            },
        )
    return statement


def add_statistics(conn: Connection, totals: Sequence[DailyTotal]) -> None:
    """Adds the totals in key order (so concurrent batches lock the rows in one order)."""
    if totals:
        conn.execute(_upsert(conn), [total._asdict() for total in sorted(totals)])


def statistics(
    conn: Connection, region_code: str, from_day: date | None, to_day: date | None, behaviour: str
) -> list[DailyTotal]:
    query = select(daily_stats)
    if region_code:
        query = query.where(daily_stats.c.region_code == region_code)
    if behaviour:
        query = query.where(daily_stats.c.behaviour == behaviour)
    if from_day:
        query = query.where(daily_stats.c.day >= from_day)
    if to_day:
        query = query.where(daily_stats.c.day <= to_day)
    query = query.order_by(daily_stats.c.day, daily_stats.c.region_code, daily_stats.c.behaviour)
    return [
        DailyTotal(r.region_code, r.behaviour, r.day, r.events, r.points, r.co2e_grams) for r in conn.execute(query)
    ]
