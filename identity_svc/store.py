"""Tables and queries of identity_svc (SQLAlchemy 2.x Core): the only module that knows SQL.

No column holds a raw ID number, name or phone number: lookups go by keyed hash, the real-name record is one
AES-GCM blob (see crypto.py), and closing an account nulls all of them (ADR 0202).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    SmallInteger,
    String,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from service_kit.db import UtcDateTime

metadata = MetaData()


_BigId = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("account_number", String(16), primary_key=True),
    Column("region_code", String(6), nullable=False),
    Column("state", SmallInteger, nullable=False),
    # HMAC-SHA256 of the ID number: the one-person-one-account constraint. NULL once closed (erased).
    Column("id_hash", String(64), unique=True),
    Column("person_key", String(64), index=True),
    Column("phone_hash", String(64), index=True),
    # The real-name record, AES-GCM sealed under the key id.
    Column("record_key_id", String(32)),
    Column("record_blob", LargeBinary),
    Column("opened_via", SmallInteger, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
)

channel_bindings = Table(
    "channel_bindings",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("platform_user_id", String(128), primary_key=True),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    Column("channel", SmallInteger, nullable=False),
    Column("bound_at", UtcDateTime, nullable=False),
)

openings = Table(
    "openings",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    Column("created", Boolean, nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("community_centre_id", String(128)),
    Column("staff_id", String(128)),
    Column("opened_at", UtcDateTime, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False),
    Column("category", SmallInteger, nullable=False),
    Column("action", SmallInteger, nullable=False),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Index("ix_consents_account_effective", "account_number", "effective_at", "id"),
)

closures = Table(
    "closures",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    Column("disposition", SmallInteger, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    # PENDING (points being moved), DONE, FAILED
    Column("state", String(16), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
)

OPEN_STATE = 1


def account(conn: Connection, account_number: str) -> Row[Any] | None:
    return conn.execute(select(accounts).where(accounts.c.account_number == account_number)).first()


def account_for_update(conn: Connection, account_number: str) -> Row[Any] | None:
    query = select(accounts).where(accounts.c.account_number == account_number).with_for_update()
    return conn.execute(query).first()


def account_by_id_hash(conn: Connection, id_hash: str) -> Row[Any] | None:
    return conn.execute(select(accounts).where(accounts.c.id_hash == id_hash)).first()


def accounts_by_numbers(conn: Connection, numbers: Iterable[str]) -> dict[str, Row[Any]]:
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    rows = conn.execute(select(accounts).where(accounts.c.account_number.in_(wanted))).all()
    return {row.account_number: row for row in rows}


def accounts_by_person_key(conn: Connection, person_key: str) -> Sequence[Row[Any]]:
    query = select(accounts).where(accounts.c.person_key == person_key).order_by(accounts.c.opened_at)
    return conn.execute(query).all()


def open_accounts_by_phone_hashes(conn: Connection, phone_hashes: Iterable[str]) -> dict[str, list[Row[Any]]]:
    wanted = sorted(set(phone_hashes))
    found: dict[str, list[Row[Any]]] = {}
    if not wanted:
        return found
    query = select(accounts).where(accounts.c.phone_hash.in_(wanted), accounts.c.state == OPEN_STATE)
    for row in conn.execute(query.order_by(accounts.c.opened_at)):
        found.setdefault(row.phone_hash, []).append(row)
    return found


def insert_account(conn: Connection, **values: Any) -> None:
    conn.execute(insert(accounts).values(**values))


def update_account(conn: Connection, account_number: str, **values: Any) -> None:
    conn.execute(update(accounts).where(accounts.c.account_number == account_number).values(**values))


def accounts_sealed_with_other_keys(conn: Connection, current_key_id: str, limit: int) -> Sequence[Any]:
    query = (
        select(accounts.c.account_number, accounts.c.record_key_id, accounts.c.record_blob)
        .where(accounts.c.record_key_id.is_not(None), accounts.c.record_key_id != current_key_id)
        .order_by(accounts.c.account_number)
        .limit(limit)
        .with_for_update()
    )
    return conn.execute(query).all()


def binding(conn: Connection, platform: str, platform_user_id: str) -> Row[Any] | None:
    query = select(channel_bindings).where(
        channel_bindings.c.platform == platform, channel_bindings.c.platform_user_id == platform_user_id
    )
    return conn.execute(query).first()


def bindings_by_keys(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    columns = tuple_(channel_bindings.c.platform, channel_bindings.c.platform_user_id)
    query = select(channel_bindings).where(columns.in_(wanted))
    return {(row.platform, row.platform_user_id): row.account_number for row in conn.execute(query)}


def bindings_of(conn: Connection, account_numbers: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    wanted = sorted(set(account_numbers))
    found: dict[str, list[tuple[str, str]]] = {number: [] for number in wanted}
    if not wanted:
        return found
    query = (
        select(channel_bindings)
        .where(channel_bindings.c.account_number.in_(wanted))
        .order_by(channel_bindings.c.bound_at, channel_bindings.c.platform)
    )
    for row in conn.execute(query):
        found[row.account_number].append((row.platform, row.platform_user_id))
    return found


def insert_binding(conn: Connection, **values: Any) -> None:
    conn.execute(insert(channel_bindings).values(**values))


def delete_bindings(conn: Connection, account_number: str) -> None:
    conn.execute(delete(channel_bindings).where(channel_bindings.c.account_number == account_number))


def opening(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(openings).where(openings.c.request_id == request_id)).first()


def insert_opening(conn: Connection, **values: Any) -> None:
    conn.execute(insert(openings).values(**values))


def consent_by_request(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(consents).where(consents.c.request_id == request_id)).first()


def insert_consent(conn: Connection, **values: Any) -> int:
    result = conn.execute(insert(consents).values(**values).returning(consents.c.id))
    return int(result.scalar_one())


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


def consent_histories(conn: Connection, account_numbers: Iterable[str]) -> dict[str, list[Any]]:
    """All consent records of many accounts in one query, oldest first."""
    wanted = sorted(set(account_numbers))
    found: dict[str, list[Any]] = {number: [] for number in wanted}
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
        found[row.account_number].append(row)
    return found


def closure(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(closures).where(closures.c.request_id == request_id)).first()


def finished_closure_of(conn: Connection, account_number: str) -> Row[Any] | None:
    query = select(closures).where(closures.c.account_number == account_number, closures.c.state == "DONE")
    return conn.execute(query).first()


def insert_closure(conn: Connection, **values: Any) -> None:
    conn.execute(insert(closures).values(**values))


def update_closure(conn: Connection, request_id: str, **values: Any) -> None:
    conn.execute(update(closures).where(closures.c.request_id == request_id).values(**values))


def erase_opening_details(conn: Connection, account_number: str) -> None:
    conn.execute(update(openings).where(openings.c.account_number == account_number).values(fingerprint="erased"))
