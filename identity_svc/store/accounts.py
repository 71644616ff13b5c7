"""Queries on accounts, their channel bindings and the openings that created or bound them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, or_, select, tuple_, update

from identity_svc.domain.accounts import AccountState, Binding
from identity_svc.store.tables import accounts, binding_events, channel_bindings, openings


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
    query = select(accounts).where(accounts.c.phone_hash.in_(wanted), accounts.c.state == int(AccountState.OPEN))
    for row in conn.execute(query.order_by(accounts.c.opened_at)):
        found.setdefault(row.phone_hash, []).append(row)
    return found


def hand_overs_due(conn: Connection, now: datetime, limit: int) -> Sequence[Row[Any]]:
    """Accounts whose holder turned 14 by `now` and whose hand-over is not recorded yet."""
    query = (
        select(accounts)
        .where(accounts.c.control_passes_at <= now, accounts.c.control_passed_at.is_(None))
        .order_by(accounts.c.control_passes_at)
        .limit(limit)
        .with_for_update()
    )
    return conn.execute(query).all()


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


def accounts_needing_name_hash(conn: Connection, hash_key_id: str, limit: int) -> Sequence[Any]:
    """Accounts with a real-name record whose name hash is missing or was made with another HMAC key."""
    stale = or_(
        accounts.c.name_hash.is_(None), accounts.c.name_hash_key.is_(None), accounts.c.name_hash_key != hash_key_id
    )
    query = (
        select(accounts)
        .where(accounts.c.record_blob.is_not(None), stale)
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
    """The account number bound to each (platform, platform user id) that has one."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    columns = tuple_(channel_bindings.c.platform, channel_bindings.c.platform_user_id)
    query = select(channel_bindings).where(columns.in_(wanted))
    return {(row.platform, row.platform_user_id): row.account_number for row in conn.execute(query)}


def bindings_of(conn: Connection, account_numbers: Iterable[str]) -> dict[str, list[Binding]]:
    """Each account's bindings in the order they were made."""
    wanted = sorted(set(account_numbers))
    found: dict[str, list[Binding]] = {number: [] for number in wanted}
    if not wanted:
        return found
    query = (
        select(channel_bindings)
        .where(channel_bindings.c.account_number.in_(wanted))
        .order_by(channel_bindings.c.bound_at, channel_bindings.c.platform)
    )
    for row in conn.execute(query):
        found[row.account_number].append(Binding(platform=row.platform, platform_user_id=row.platform_user_id))
    return found


def bindings_with_channels(conn: Connection, account_number: str) -> list[tuple[str, int]]:
    """(platform, channel) of each of the account's bindings, in the order they were made."""
    query = (
        select(channel_bindings.c.platform, channel_bindings.c.channel)
        .where(channel_bindings.c.account_number == account_number)
        .order_by(channel_bindings.c.bound_at, channel_bindings.c.platform, channel_bindings.c.platform_user_id)
    )
    return [(row.platform, int(row.channel)) for row in conn.execute(query)]


def insert_binding(conn: Connection, **values: Any) -> None:
    conn.execute(insert(channel_bindings).values(**values))


def delete_bindings(conn: Connection, account_number: str) -> None:
    conn.execute(delete(channel_bindings).where(channel_bindings.c.account_number == account_number))


def opening(conn: Connection, request_id: str) -> Row[Any] | None:
    return conn.execute(select(openings).where(openings.c.request_id == request_id)).first()


def insert_opening(conn: Connection, **values: Any) -> None:
    conn.execute(insert(openings).values(**values))


def insert_opened(
    conn: Connection,
    account: dict[str, Any],
    binding: dict[str, Any] | None,
    event: dict[str, Any],
    opening: dict[str, Any],
) -> None:
    """A new account with its binding (if any), its binding event and its opening. On PostgreSQL one statement, the
    first three inserts as data-modifying CTEs (foreign keys are checked at the statement's end, when all rows
    exist); on SQLite four statements in the caller's transaction."""
    parts = [insert(accounts).values(**account)]
    if binding is not None:
        parts.append(insert(channel_bindings).values(**binding))
    parts.append(insert(binding_events).values(**event))
    last = insert(openings).values(**opening)
    if conn.dialect.name == "postgresql":
        ctes = [part.cte(f"written_{index}") for index, part in enumerate(parts)]
        conn.execute(last.add_cte(*ctes))
        return
    for part in (*parts, last):
        conn.execute(part)


# What an opening's fingerprint becomes when its account is closed: the request can no longer be told from another.
ERASED_FINGERPRINT = "erased"


def erase_opening_details(conn: Connection, account_number: str) -> None:
    update_openings = update(openings).where(openings.c.account_number == account_number)
    conn.execute(update_openings.values(fingerprint=ERASED_FINGERPRINT))
