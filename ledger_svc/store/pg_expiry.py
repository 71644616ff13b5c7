"""The expiry sweep on PostgreSQL, set-based (ADR 0102): a batch of expired lots is emptied, and their accounts debited,
by one statement; its transfers go in by COPY, with no lot records (each names its lot in its reference, ADR 0130).
Lock order as everywhere: accounts, lots, shards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from ledger_svc.domain.expiry import ExpiringLot, ExpiryCandidate, ExpiryTransfer
from ledger_svc.domain.lots import UserAccount
from ledger_svc.domain.names import TransferCode
from ledger_svc.store.tables import EVERY_LOT
from service_kit.accounts import EXPIRY_ACCOUNT
from service_kit.pg_copy import copy_into

# Keyset order, ix_lots_expiring's: each batch starts after the last lot of the previous one, and a run after the
# watermark (ADR 0133), so a sweep never rescans the entries of lots emptied before. The index holds every lot (an
# emptied one too: emptying a lot then writes no index entry), so lots without points are skipped here, in the range
# of this run only. What each lot holds now is what the batch expects to take (ADR 0131). Both lot tables are walked
# alike and merged (ADR 0137): a lot keeps its (expiry, id) when it moves, so the keyset is the same over both.
_CANDIDATES_IN = """
    SELECT lot_id, account, expires_at_us, remaining_points FROM {table}
    WHERE remaining_points > 0 AND expires_at_us <= %(cutoff)s::bigint
      AND (expires_at_us, lot_id) > (%(after_expiry)s::bigint, %(after_id)s::bigint)
    ORDER BY expires_at_us, lot_id LIMIT %(limit)s::bigint
"""
_CANDIDATES = f"""
    SELECT * FROM (({_CANDIDATES_IN.format(table="lots")}) UNION ALL ({_CANDIDATES_IN.format(table="recent_lots")})) c
    ORDER BY expires_at_us, lot_id LIMIT %(limit)s::bigint
"""
# Locks the accounts and takes what their candidate lots held off their balances, in one pass (ADR 0131): the rows
# are updated in account order, the lock order everywhere, because the join walks the sorted list and probes the
# primary key for each (the batch's transaction turns hash and merge joins off, see debit_accounts). Returns the
# balances after.
_DEBIT_ACCOUNTS = """
    UPDATE accounts SET balance_points = accounts.balance_points - expected.points
    FROM (
        SELECT account, points
        FROM unnest(string_to_array(%(names)s, ','), CAST(string_to_array(%(points)s, ',') AS bigint[]))
            AS expected (account, points)
        ORDER BY account
    ) AS expected
    WHERE accounts.account = expected.account
    RETURNING accounts.account, accounts.balance_points, accounts.held_points
"""
# A hash join would update the accounts in the hash table's order, and two transactions locking shared accounts in
# different orders deadlock; a nested loop over the sorted list keeps account order. For this transaction only; one
# round trip.
_NESTED_LOOPS_ONLY = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
# Locks the accounts (in account order) and returns their balances: when the one pass above cannot be taken.
_LOCK_ACCOUNTS = text(
    """
    SELECT account, balance_points, held_points FROM accounts
    WHERE account = ANY(string_to_array(:names, ',')) ORDER BY account FOR UPDATE
    """
)
# Under the accounts' locks no one else writes these lots, so they need no lock of their own before the UPDATE
# (a FOR UPDATE here wrote a lock record per lot); the CTE keeps what each held before it is emptied. The ids come
# as one joined text, split by the server: the driver turning a 10,000-item list into an array costs more Python
# (ADR 0134). The result's columns are ExpiringLot's, in its order.
_EMPTY_IN = """
    {table}_emptied AS (
        UPDATE {table} SET remaining_points = 0, expired_points = swept.before + swept.points
        FROM swept WHERE {table}.lot_id = swept.lot_id
        RETURNING {table}.lot_id, {table}.account, {table}.expires_at_us, {table}.earned_on, swept.points, swept.before
    )"""
_EMPTY_LOTS = f"""
    WITH swept AS (
        SELECT lot_id, remaining_points AS points, expired_points AS before FROM {EVERY_LOT} AS l
        WHERE lot_id = ANY(CAST(string_to_array(%(ids)s, ',') AS bigint[])) AND remaining_points > 0
          AND expires_at_us <= %(cutoff)s::bigint
    ), {_EMPTY_IN.format(table="lots")}, {_EMPTY_IN.format(table="recent_lots")}
    SELECT * FROM lots_emptied UNION ALL SELECT * FROM recent_lots_emptied
"""
# What the accounts lost differs from what their lots held when the batch read them (a refund refilled a lot since,
# or another sweep emptied it): the difference goes back.
_CORRECT_ACCOUNTS = text(
    """
    UPDATE accounts SET balance_points = accounts.balance_points + correction.points
    FROM unnest(string_to_array(:names, ','), CAST(string_to_array(:points, ',') AS bigint[]))
        AS correction (account, points)
    WHERE accounts.account = correction.account
    """
)
_COPY_TRANSFERS = (
    "COPY transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,"
    " co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, debit_balance_after) FROM STDIN"
)
_EXPIRE = int(TransferCode.EXPIRE)


def _rows(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """All rows of a statement, read through the transaction's own driver cursor as plain tuples: the candidates, the
    emptied lots and the debited accounts are 10,000 rows a batch, and SQLAlchemy's rows cost ~60% more Python to
    read (ADR 0133). Driver errors are raised as SQLAlchemy's (a refused debit as its IntegrityError)."""
    import psycopg

    try:
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
    except psycopg.Error as error:
        raise DBAPIError.instance(sql, params, error, psycopg.Error) from error


def expired_lot_candidates(
    conn: Connection, cutoff_us: int, limit: int, after: ExpiryCandidate | None
) -> list[ExpiryCandidate]:
    """Up to `limit` lots with points left that expired by the cutoff, in (expiry, id) order after `after` (None:
    from the first), with what each holds."""
    after_expiry, after_id = (after.expires_at_us, after.lot_id) if after else (-(2**63), -(2**63))
    parameters = {"cutoff": cutoff_us, "limit": limit, "after_expiry": after_expiry, "after_id": after_id}
    return list(map(ExpiryCandidate._make, _rows(conn, _CANDIDATES, parameters)))


def debit_accounts(conn: Connection, expected: Mapping[str, int]) -> dict[str, UserAccount]:
    """Locks the accounts, in account order, taking `expected` points off each; returns them as they were before."""
    _rows(conn, _NESTED_LOOPS_ONLY)
    names = sorted(expected)
    parameters = {"names": ",".join(names), "points": ",".join(str(expected[name]) for name in names)}
    users = {
        account: UserAccount(account, balance + expected[account], held)
        for account, balance, held in _rows(conn, _DEBIT_ACCOUNTS, parameters)
    }
    assert len(users) == len(names), "every lot's account exists"
    return users


def lock_accounts(conn: Connection, names: list[str]) -> dict[str, UserAccount]:
    rows = conn.execute(_LOCK_ACCOUNTS, {"names": ",".join(sorted(set(names)))})
    return {row.account: UserAccount(row.account, row.balance_points, row.held_points) for row in rows}


def empty_lots(conn: Connection, lot_ids: list[int], cutoff_us: int) -> list[ExpiringLot]:
    """Empties the lots (of locked accounts) that still hold expired points; returns them as they were."""
    parameters = {"ids": ",".join([str(lot_id) for lot_id in lot_ids]), "cutoff": cutoff_us}
    return list(map(ExpiringLot._make, _rows(conn, _EMPTY_LOTS, parameters)))


def correct_accounts(conn: Connection, corrections: Mapping[str, int]) -> None:
    """Gives each account back `corrections` points (negative: takes them)."""
    names = sorted(corrections)
    conn.execute(
        _CORRECT_ACCOUNTS, {"names": ",".join(names), "points": ",".join(str(corrections[name]) for name in names)}
    )


def copy_expiry_transfers(conn: Connection, transfers: list[ExpiryTransfer], batch_id: int, now_us: int) -> None:
    # Ids, accounts, references and fingerprints the sweep made itself: nothing in them needs COPY's escapes.
    lines = [
        f"{t.transfer_id}\t{batch_id}\t{t.lot.account}\t{EXPIRY_ACCOUNT}\t{t.lot.points}\t{_EXPIRE}\t{t.reference}"
        f"\t0\t\t0\t{now_us}\t{t.fingerprint}\t{t.debit_balance_after}\n"
        for t in transfers
    ]
    with copy_into(conn, _COPY_TRANSFERS) as copy:
        copy.write("".join(lines))
