"""Queries on the resident authorizations issued: by (account, request id), insert, renew after expiry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from identity_svc.store.tables import resident_authorizations


def authorization(conn: Connection, account_number: str, request_id: str) -> Row[Any] | None:
    query = select(resident_authorizations).where(
        resident_authorizations.c.account_number == account_number,
        resident_authorizations.c.request_id == request_id,
    )
    return conn.execute(query).first()


def insert_authorization(conn: Connection, **values: Any) -> None:
    conn.execute(insert(resident_authorizations).values(**values))


def renew_authorization(conn: Connection, account_number: str, request_id: str, **values: Any) -> None:
    query = update(resident_authorizations).where(
        resident_authorizations.c.account_number == account_number,
        resident_authorizations.c.request_id == request_id,
    )
    conn.execute(query.values(**values))
