"""Locking user accounts (sorted, so concurrent transactions never deadlock), their lots, system balances."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Insert, Select, Table, bindparam, func, select, text, tuple_, union_all, update

from ledger_svc.domain.book import LotDelta
from ledger_svc.domain.lots import LotKey, LotState, UserAccount, is_recent
from ledger_svc.store import pg_accounts
from ledger_svc.store.dialects import chunks, dialect_insert
from ledger_svc.store.tables import (
    JOURNAL_LAST_SEQ,
    accounts,
    every_lot,
    in_both,
    lot_key_columns,
    lots,
    recent_lots,
    system_balances,
)

SYSTEM_SHARDS = 64
# Each thread writes its own shard (a process starts at a random one): the transactions of one server's worker
# threads never wait for each other on a shard's row lock, as they did with a random shard per transaction.
_next_shard = itertools.count(random.randrange(SYSTEM_SHARDS))
_thread_shard = threading.local()


def lock_users(conn: Connection, names: Iterable[str], now_us: int) -> dict[str, UserAccount]:
    """Creates missing accounts and locks all of them in account order; returns their balances (no lots).

    The no-op ON CONFLICT DO UPDATE takes the row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises.
    """
    ordered = sorted(set(names))
    if ordered and conn.dialect.name == "postgresql":
        return pg_accounts.lock_users(conn, ordered, now_us)
    result: dict[str, UserAccount] = {}
    opened_after_seq = text(JOURNAL_LAST_SEQ[conn.dialect.name])
    for part in chunks(ordered):
        insert: Insert = dialect_insert(conn, accounts).values(
            [
                {
                    "account": name,
                    "balance_points": 0,
                    "held_points": 0,
                    "created_at_us": now_us,
                    "opened_after_seq": opened_after_seq,
                }
                for name in part
            ]
        )
        statement = insert.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["account"], set_={"balance_points": accounts.c.balance_points}
        ).returning(
            accounts.c.account, accounts.c.balance_points, accounts.c.held_points, accounts.c.lots_moved_through
        )
        for row in conn.execute(statement):
            result[row.account] = UserAccount(
                row.account, row.balance_points, row.held_points, lots_moved_through=row.lots_moved_through
            )
    return result


def load_spendable_lots(conn: Connection, users: Mapping[str, UserAccount], now_us: int) -> None:
    """Fills in the unexpired, non-empty lots of locked accounts (what a debit may take), from both lot tables."""
    for part in chunks(sorted(users)):

        def spendable(table: Table, part: list[str] = part) -> Select[tuple[Any, ...]]:
            return select(
                table.c.lot_id, table.c.account, table.c.expires_at_us, table.c.earned_on, table.c.remaining_points
            ).where(table.c.account.in_(part), table.c.remaining_points > 0, table.c.expires_at_us > now_us)

        for row in conn.execute(in_both(spendable)):
            key = LotKey(row.account, row.expires_at_us, row.earned_on)
            users[row.account].lots[key] = LotState(key, row.remaining_points, row.lot_id)


def write_lot_deltas(conn: Connection, users: Mapping[str, UserAccount], deltas: Mapping[LotKey, LotDelta]) -> None:
    """Applies lot changes: UPDATE by id for lots the transaction read, upsert for the others; learns new ids."""
    known: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    for key, delta in deltas.items():
        if delta.remaining_points == 0 and delta.credited_points == 0:
            continue
        lot = users[key.account].lots[key]
        if lot.lot_id is not None:
            known.append(
                {
                    "id": lot.lot_id,
                    "lot_account": key.account,
                    "d_remaining": delta.remaining_points,
                    "d_credited": delta.credited_points,
                }
            )
        else:
            unknown.append(
                {
                    "account": key.account,
                    "earned_on": key.earned_on,
                    "expires_at_us": key.expires_at_us,
                    "credited_points": delta.credited_points,
                    "remaining_points": delta.remaining_points,
                    "expired_points": 0,
                }
            )
    if known:
        _update_lots_by_id(conn, sorted(known, key=lambda row: row["id"]))
    if unknown:
        unknown.sort(key=lambda row: (row["account"], row["expires_at_us"], row["earned_on"]))
        for key, lot_id in _upsert_lots(conn, users, unknown).items():
            users[key.account].lots[key].lot_id = lot_id


def store_empty_lots(conn: Connection, users: Mapping[str, UserAccount], keys: Iterable[LotKey]) -> None:
    """Stores lots this transaction created and emptied again (so nothing else writes them), learning their ids."""
    rows = [
        {
            "account": key.account,
            "earned_on": key.earned_on,
            "expires_at_us": key.expires_at_us,
            "credited_points": 0,
            "remaining_points": 0,
            "expired_points": 0,
        }
        for key in sorted(keys)
    ]
    if rows:
        for key, lot_id in _upsert_lots(conn, users, rows).items():
            users[key.account].lots[key].lot_id = lot_id


def _update_lots_by_id(conn: Connection, rows: list[dict[str, Any]]) -> None:
    # The account beside the id: on Citus the lots are distributed by account, and a statement that names it goes to
    # one shard (docs/scale-plan.md, section 3). An id is in one of the two tables: each is asked.
    for table in (lots, recent_lots):
        conn.execute(
            update(table)
            .where(table.c.lot_id == bindparam("id"), table.c.account == bindparam("lot_account"))
            .values(
                remaining_points=table.c.remaining_points + bindparam("d_remaining"),
                credited_points=table.c.credited_points + bindparam("d_credited"),
            ),
            rows,
        )


def update_lots_by_id(conn: Connection, changes: Mapping[int, int]) -> None:
    """Adds each lot's points, by id, wherever the lot lives: for callers that know ids only. An id is in one of the
    two tables: each is asked."""
    rows = [{"id": lot_id, "d": points} for lot_id, points in sorted(changes.items())]
    for table in (lots, recent_lots):
        conn.execute(
            update(table)
            .where(table.c.lot_id == bindparam("id"))
            .values(remaining_points=table.c.remaining_points + bindparam("d")),
            rows,
        )


def _upsert_lots(conn: Connection, users: Mapping[str, UserAccount], rows: list[dict[str, Any]]) -> dict[LotKey, int]:
    """Adds the rows' points to their lots, creating the missing ones (in key order); the lot ids by key. Each row goes
    to the table its account's moved-through day says (ADR 0137): the caller holds the account's lock."""
    recent: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for row in rows:
        moved_through = users[row["account"]].lots_moved_through
        assert moved_through is not None, "an account that gets a lot was locked with its moved-through day"
        (recent if is_recent(row["earned_on"], moved_through) else moved).append(row)
    found: dict[LotKey, int] = {}
    for table, part_rows in ((recent_lots, recent), (lots, moved)):
        if not part_rows:
            continue
        if conn.dialect.name == "postgresql":
            found.update(pg_accounts.upsert_lots(conn, part_rows, recent=table is recent_lots))
        else:
            found.update(_upsert_lots_sqlite(conn, table, part_rows))
    return found


def _upsert_lots_sqlite(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> dict[LotKey, int]:
    """SQLite has no sequence both tables can draw from: a new lot gets the next id above every lot's, given here
    (one writer at a time, so no other transaction takes it meanwhile). A row that finds its lot keeps that lot's id;
    its proposed id is left unused."""
    found: dict[LotKey, int] = {}
    for part in chunks(rows, 500):
        next_id = next_lot_id(conn)
        numbered = [{**row, "lot_id": next_id + n} for n, row in enumerate(part)]
        insert: Insert = dialect_insert(conn, table).values(numbered)
        excluded = insert.excluded  # type: ignore[attr-defined]
        statement = insert.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=list(lot_key_columns(table)),
            set_={
                "remaining_points": table.c.remaining_points + excluded.remaining_points,
                "credited_points": table.c.credited_points + excluded.credited_points,
            },
        ).returning(table.c.lot_id, table.c.account, table.c.expires_at_us, table.c.earned_on)
        for row in conn.execute(statement):
            found[LotKey(row.account, row.expires_at_us, row.earned_on)] = row.lot_id
    return found


def next_lot_id(conn: Connection) -> int:
    """SQLite: one above the greatest lot id of either table (each read off its primary key's end)."""
    greatest = union_all(select(func.max(lots.c.lot_id).label("id")), select(func.max(recent_lots.c.lot_id)))
    found = conn.execute(select(func.max(greatest.subquery().c.id))).scalar()
    return int(found or 0) + 1


def write_users(conn: Connection, users: Mapping[str, UserAccount], before: Mapping[str, tuple[int, int]]) -> None:
    """Writes the final balance and held points of accounts that changed since `before` (a `snapshot`)."""
    changed = [
        user for name, user in sorted(users.items()) if before.get(name) != (user.balance_points, user.held_points)
    ]
    if not changed:
        return
    if conn.dialect.name == "postgresql":
        pg_accounts.write_users(conn, changed)
        return
    conn.execute(
        update(accounts)
        .where(accounts.c.account == bindparam("name"))
        .values(balance_points=bindparam("balance"), held_points=bindparam("held")),
        [{"name": user.account, "balance": user.balance_points, "held": user.held_points} for user in changed],
    )


def snapshot(users: Mapping[str, UserAccount]) -> dict[str, tuple[int, int]]:
    """Each account's (balance, held) points, to tell later which changed."""
    return {name: (state.balance_points, state.held_points) for name, state in users.items()}


def apply_system_deltas(conn: Connection, deltas: Mapping[str, int]) -> None:
    """Adds each system account's net change of the transaction to this thread's shard: one row lock per account
    per transaction, spread over shards, so the issuance account is never a per-event (or global) lock."""
    rows = [
        {"account": name, "shard": shard_of_this_thread(), "balance_points": delta}
        for name, delta in sorted(deltas.items())
        if delta
    ]
    if not rows:
        return
    conn.execute(_system_upsert(conn), rows)


_SYSTEM_UPSERTS: dict[str, Any] = {}


def _system_upsert(conn: Connection) -> Any:
    """Built once per dialect, values bound per call: with the values inlined, SQLAlchemy compiled the statement
    anew for every batch."""
    statement = _SYSTEM_UPSERTS.get(conn.dialect.name)
    if statement is None:
        insert: Insert = dialect_insert(conn, system_balances)
        excluded = insert.excluded  # type: ignore[attr-defined]
        statement = _SYSTEM_UPSERTS[conn.dialect.name] = insert.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["account", "shard"],
            set_={"balance_points": system_balances.c.balance_points + excluded.balance_points},
        )
    return statement


def shard_of_this_thread() -> int:
    shard: int | None = getattr(_thread_shard, "shard", None)
    if shard is None:
        shard = _thread_shard.shard = next(_next_shard) % SYSTEM_SHARDS
    return shard


def lots_by_id(conn: Connection, lot_ids: Iterable[int]) -> dict[int, LotKey]:
    ids = sorted(set(lot_ids))
    found: dict[int, LotKey] = {}
    lot = every_lot.c
    for part in chunks(ids):
        rows = conn.execute(
            select(lot.lot_id, lot.account, lot.expires_at_us, lot.earned_on).where(lot.lot_id.in_(part))
        )
        for row in rows:
            found[row.lot_id] = LotKey(row.account, row.expires_at_us, row.earned_on)
    return found


def lot_ids_by_key(conn: Connection, keys: Iterable[LotKey]) -> dict[LotKey, int]:
    """Ids of the existing lots among `keys`: one statement on PostgreSQL, one per chunk of keys on SQLite."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        return pg_accounts.lot_ids_by_key(conn, wanted)
    found: dict[LotKey, int] = {}
    lot = every_lot.c
    for part in chunks(wanted, 300):
        rows = conn.execute(
            select(lot.lot_id, lot.account, lot.expires_at_us, lot.earned_on).where(
                tuple_(lot.account, lot.expires_at_us, lot.earned_on).in_(
                    [(key.account, key.expires_at_us, key.earned_on) for key in part]
                )
            )
        )
        for row in rows:
            found[LotKey(row.account, row.expires_at_us, row.earned_on)] = row.lot_id
    return found
