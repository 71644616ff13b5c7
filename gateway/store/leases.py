"""Leases and retry times of the gateway's sagas (transfers, redeem-anywhere requests), one set of queries for both.

A driver (a request thread or the recovery loop) claims a row's lease before a step, so two never race one; a
crashed driver's lease runs out and the row is due again. A step that found a region down postpones the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, or_, select, update


def _key(table: Table) -> Column[Any]:
    (key,) = table.primary_key.columns
    return key


def claim(
    conn: Connection, table: Table, key: str, now: datetime, lease_until: datetime, lease_owner: str | None = None
) -> bool:
    """Takes the lease unless another driver holds one that has not run out; False if it does."""
    result = conn.execute(
        update(table)
        .where(_key(table) == key, or_(table.c.lease_until.is_(None), table.c.lease_until < now))
        .values(lease_until=lease_until, lease_owner=lease_owner)
    )
    return result.rowcount == 1


def renew_lease(
    conn: Connection, table: Table, key: str, lease_until: datetime, lease_owner: str | None = None
) -> None:
    conn.execute(update(table).where(_key(table) == key).values(lease_until=lease_until, lease_owner=lease_owner))


def take_back(conn: Connection, table: Table, lease_owner: str, unfinished_states: Iterable[str]) -> int:
    """Ends every lease `lease_owner` holds on an unfinished row: called by a gateway as it starts under that
    instance name, these can only be its killed predecessor's, whose drivers are gone. Returns how many it ended.
    Finished rows hold no lease (the settling write ends it); naming the unfinished states lets the state index
    find the few rows in flight instead of a scan of every row ever written."""
    result = conn.execute(
        update(table)
        .where(
            table.c.state.in_(sorted(unfinished_states)),
            table.c.lease_owner == lease_owner,
            table.c.lease_until.is_not(None),
        )
        .values(lease_until=None, lease_owner=None)
    )
    return result.rowcount


def release_lease(conn: Connection, table: Table, key: str) -> None:
    conn.execute(update(table).where(_key(table) == key).values(lease_until=None))


def postpone(conn: Connection, table: Table, key: str, next_attempt_at: datetime) -> None:
    """A step could not run now (a region is down): try again later, counting attempts for backoff."""
    conn.execute(
        update(table)
        .where(_key(table) == key)
        .values(next_attempt_at=next_attempt_at, attempts=table.c.attempts + 1, lease_until=None)
    )


def due_unfinished(
    conn: Connection, table: Table, finished_states: Iterable[str], now: datetime, limit: int
) -> list[str]:
    """Keys of rows not in a finished state, due for another attempt and leased by no one, oldest first."""
    query = (
        select(_key(table))
        .where(
            table.c.state.not_in(list(finished_states)),
            or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),
            or_(table.c.lease_until.is_(None), table.c.lease_until < now),
        )
        .order_by(table.c.created_at)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())
