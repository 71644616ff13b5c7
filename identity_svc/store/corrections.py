"""The audit of corrections to real-name records: which fields changed, on whose word, when (never the values)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from identity_svc.store.tables import record_corrections


def correction(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(record_corrections).where(record_corrections.c.request_id == request_id)).first()


def insert_correction(conn: Connection, **values: Any) -> None:
    conn.execute(insert(record_corrections).values(**values))


def corrections_of(conn: Connection, account_number: str) -> Sequence[Row[Any]]:
    query = select(record_corrections).where(record_corrections.c.account_number == account_number)
    return conn.execute(query.order_by(record_corrections.c.corrected_at)).all()
