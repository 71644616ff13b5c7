"""PostgreSQL statements over arrays (unnest) for accounts and lots: one statement per call, whatever the number of
rows, where the general statements in accounts.py compile a multi-row VALUES anew. Rows are taken in key order, so
row locks are always acquired in the same order (ADR 0100)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from ledger_svc.domain.lots import LotKey, UserAccount
from ledger_svc.store.tables import JOURNAL_LAST_SEQ, lot_key_columns, lots, recent_lots

_LOCK_USERS = text(
    f"""
    INSERT INTO accounts (account, balance_points, held_points, created_at_us, opened_after_seq)
    SELECT name, 0, 0, :now, {JOURNAL_LAST_SEQ["postgresql"]} FROM unnest(CAST(:names AS text[])) AS name ORDER BY name
    ON CONFLICT (account) DO UPDATE SET balance_points = accounts.balance_points
    RETURNING account, balance_points, held_points, lots_moved_through
    """
)
# One statement per lot table (ADR 0137); each infers its own unique key.
_UPSERT_INTO = """
    INSERT INTO {table} (account, earned_on, expires_at_us, credited_points, remaining_points, expired_points)
    SELECT a, d, e, c, r, 0
    FROM unnest(CAST(:account AS text[]), CAST(:earned_on AS date[]), CAST(:expires_at_us AS bigint[]),
                CAST(:credited_points AS bigint[]), CAST(:remaining_points AS bigint[])) AS v(a, d, e, c, r)
    ORDER BY a, e, d
    ON CONFLICT ({key}) DO UPDATE
    SET remaining_points = {table}.remaining_points + excluded.remaining_points,
        credited_points = {table}.credited_points + excluded.credited_points
    RETURNING lot_id, account, expires_at_us, earned_on
"""
_UPSERT_LOTS = text(_UPSERT_INTO.format(table="lots", key=", ".join(lot_key_columns(lots))))
_UPSERT_RECENT_LOTS = text(_UPSERT_INTO.format(table="recent_lots", key=", ".join(lot_key_columns(recent_lots))))
_WRITE_USERS = text(
    """
    UPDATE accounts SET balance_points = v.b, held_points = v.h
    FROM unnest(CAST(:names AS text[]), CAST(:balances AS bigint[]), CAST(:helds AS bigint[])) AS v(n, b, h)
    WHERE accounts.account = v.n
    """
)
# Each key one probe of each lot table's key.
_LOT_IDS_BY_KEY = text(
    """
    WITH v(a, e, d) AS (
        SELECT * FROM unnest(CAST(:accounts AS text[]), CAST(:expires AS bigint[]), CAST(:days AS date[]))
    )
    SELECT lots.lot_id, lots.account, lots.expires_at_us, lots.earned_on
    FROM v JOIN lots ON lots.account = v.a AND lots.expires_at_us = v.e AND lots.earned_on = v.d
    UNION ALL
    SELECT r.lot_id, r.account, r.expires_at_us, r.earned_on
    FROM v JOIN recent_lots r ON r.earned_on = v.d AND r.account = v.a AND r.expires_at_us = v.e
    """
)


def lock_users(conn: Connection, ordered_names: list[str], now_us: int) -> dict[str, UserAccount]:
    rows = conn.execute(_LOCK_USERS, {"names": ordered_names, "now": now_us})
    return {
        row.account: UserAccount(
            row.account, row.balance_points, row.held_points, lots_moved_through=row.lots_moved_through
        )
        for row in rows
    }


def upsert_lots(conn: Connection, rows: list[dict[str, Any]], *, recent: bool) -> dict[LotKey, int]:
    """Adds the rows' points to their lots (creating them) in recent_lots or lots; the lot ids by key."""
    columns = {
        name: [row[name] for row in rows]
        for name in ("account", "earned_on", "expires_at_us", "credited_points", "remaining_points")
    }
    return {
        LotKey(row.account, row.expires_at_us, row.earned_on): row.lot_id
        for row in conn.execute(_UPSERT_RECENT_LOTS if recent else _UPSERT_LOTS, columns)
    }


def write_users(conn: Connection, changed: list[UserAccount]) -> None:
    """Writes the balance and held points of each account."""
    conn.execute(
        _WRITE_USERS,
        {
            "names": [user.account for user in changed],
            "balances": [user.balance_points for user in changed],
            "helds": [user.held_points for user in changed],
        },
    )


def lot_ids_by_key(conn: Connection, keys: list[LotKey]) -> dict[LotKey, int]:
    columns: dict[str, list[str] | list[int] | list[date]] = {
        "accounts": [key.account for key in keys],
        "expires": [key.expires_at_us for key in keys],
        "days": [key.earned_on for key in keys],
    }
    return {
        LotKey(row.account, row.expires_at_us, row.earned_on): row.lot_id
        for row in conn.execute(_LOT_IDS_BY_KEY, columns)
    }
