"""What differs between PostgreSQL and SQLite, said once: the INSERT that has ON CONFLICT, times read back, and IN
lists cut to a bounded size. Both databases support INSERT .. ON CONFLICT and RETURNING."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

CHUNK_ROWS = 500
Item = TypeVar("Item")


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which offers on_conflict_do_nothing/on_conflict_do_update."""
    return (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)


def utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones: they were stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def chunks(items: Sequence[Item], size: int = CHUNK_ROWS) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
