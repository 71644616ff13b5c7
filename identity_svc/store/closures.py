"""Queries on closures: one row per close request, from PENDING to DONE or FAILED."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from identity_svc.store.tables import closures


def closure(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(closures).where(closures.c.request_id == request_id)).first()


def insert_closure(conn: Connection, **values: Any) -> None:
    conn.execute(insert(closures).values(**values))


def update_closure(conn: Connection, request_id: str, **values: Any) -> None:
    conn.execute(update(closures).where(closures.c.request_id == request_id).values(**values))
