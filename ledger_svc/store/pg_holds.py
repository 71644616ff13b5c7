"""Holds on PostgreSQL in a few statements each (ADR 0103): lock, read, then one statement of CTEs that writes.

These statements go straight to the driver (psycopg prepares them after a few uses), skipping SQLAlchemy's
per-statement work: a hold+commit pair is half the general path's statements, and little Python.
Every statement runs under the row lock of the held account, taken by the first one, so a later statement's
snapshot sees every change to that account's lots and holds (ADR 0100's lock order is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger_svc.domain.holds import Hold, HoldState
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.store.tables import EVERY_LOT, JOURNAL_LAST_SEQ

_OPENED_AFTER_SEQ = JOURNAL_LAST_SEQ["postgresql"]

# Locks (creating it if need be) the account to hold from; says whether the id is taken, all as of before the lock
# (holds are never deleted and their bodies never change, so what this sees stays true).
_LOCK_FOR_HOLD = f"""
WITH locked AS (
    INSERT INTO accounts (account, balance_points, held_points, created_at_us, opened_after_seq)
    VALUES (%(account)s, 0, 0, %(now)s, {_OPENED_AFTER_SEQ})
    ON CONFLICT (account) DO UPDATE SET balance_points = accounts.balance_points
    RETURNING balance_points, held_points
)
SELECT balance_points, held_points,
       EXISTS (SELECT 1 FROM holds WHERE hold_id = %(id)s)
       OR EXISTS (SELECT 1 FROM transfers WHERE transfer_id = %(id)s) AS taken
FROM locked
"""

# Releases the timed-out pending holds of locked accounts: points back to their lots, held points down.
# A lot is in lots or in recent_lots (ADR 0137): each change by id is made in both, in the one statement.
_RELEASE_EXPIRED = """
WITH expired AS (
    UPDATE holds SET state = 4, resolved_at_us = %(now)s
    WHERE account = ANY(%(accounts)s::text[]) AND state = 1 AND expires_at_us <= %(now)s
    RETURNING hold_id, account, amount_points
), per_lot AS (
    SELECT hl.lot_id, sum(hl.amount_points)::bigint AS points FROM hold_lots hl JOIN expired e ON e.hold_id = hl.hold_id
    GROUP BY hl.lot_id
), lot_update AS (
    UPDATE lots SET remaining_points = lots.remaining_points + per_lot.points FROM per_lot
    WHERE lots.lot_id = per_lot.lot_id
), recent_lot_update AS (
    UPDATE recent_lots SET remaining_points = recent_lots.remaining_points + per_lot.points FROM per_lot
    WHERE recent_lots.lot_id = per_lot.lot_id
), per_account AS (
    SELECT account, sum(amount_points)::bigint AS points, count(*) AS holds FROM expired GROUP BY account
), account_update AS (
    UPDATE accounts SET held_points = accounts.held_points - per_account.points FROM per_account
    WHERE accounts.account = per_account.account
)
SELECT account, points, holds FROM per_account
"""

# Takes the hold's points FIFO by expiry (a running sum picks the lots), records the hold and its portions and
# raises the held points; writes nothing if the spendable points do not cover it (first column says how many).
_TAKE_HOLD = f"""
WITH spendable AS (
    SELECT lot_id, expires_at_us, earned_on, remaining_points,
           (sum(remaining_points) OVER (ORDER BY expires_at_us, earned_on))::bigint - remaining_points AS before
    FROM {EVERY_LOT} AS lots WHERE account = %(account)s AND remaining_points > 0 AND expires_at_us > %(now)s
), total AS (
    SELECT coalesce(sum(remaining_points), 0)::bigint AS available FROM spendable
), picked AS (
    SELECT lot_id, expires_at_us, earned_on, least(remaining_points, %(amount)s::bigint - before) AS take,
           (row_number() OVER (ORDER BY expires_at_us, earned_on) - 1)::smallint AS position
    FROM spendable, total WHERE total.available >= %(amount)s::bigint AND before < %(amount)s::bigint
), lot_update AS (
    UPDATE lots SET remaining_points = lots.remaining_points - picked.take FROM picked WHERE lots.lot_id = picked.lot_id
), recent_lot_update AS (
    UPDATE recent_lots SET remaining_points = recent_lots.remaining_points - picked.take FROM picked
    WHERE recent_lots.lot_id = picked.lot_id
), hold_insert AS (
    INSERT INTO holds (hold_id, account, amount_points, state, expires_at_us, committed_points, credit_account, code,
                       reference, metadata_json, fingerprint, created_at_us)
    SELECT %(id)s, %(account)s, %(amount)s::bigint, 1, %(expires)s::bigint, 0, '', %(code)s::smallint,
           %(reference)s, %(metadata)s, %(fingerprint)s, %(now)s::bigint
    FROM total WHERE total.available >= %(amount)s::bigint
), portion_insert AS (
    INSERT INTO hold_lots (hold_id, position, lot_id, amount_points) SELECT %(id)s, position, lot_id, take FROM picked
), account_update AS (
    UPDATE accounts SET held_points = accounts.held_points + %(amount)s::bigint FROM total
    WHERE accounts.account = %(account)s AND total.available >= %(amount)s::bigint
)
SELECT total.available, picked.lot_id, picked.expires_at_us, picked.earned_on, picked.take
FROM total LEFT JOIN picked ON true ORDER BY picked.position
"""

# Locks the account a hold holds from and reads the hold with its portions (no row: no such hold). The hold is read
# as of before the lock: if it was resolved meanwhile, the guarded write below changes nothing and the caller
# reads it again (a resolved hold never changes again, and only its state, amount and credit account ever change).
_LOCK_AND_READ_HOLD = f"""
WITH held AS (
    SELECT account FROM holds WHERE hold_id = %(id)s
), locked AS (
    INSERT INTO accounts (account, balance_points, held_points, created_at_us, opened_after_seq)
    SELECT account, 0, 0, %(now)s, {_OPENED_AFTER_SEQ} FROM held
    ON CONFLICT (account) DO UPDATE SET balance_points = accounts.balance_points
    RETURNING balance_points
)
SELECT locked.balance_points, h.account, h.amount_points, h.state, h.expires_at_us, h.code, h.fingerprint,
       h.created_at_us, h.reference, h.metadata_json, h.committed_points, h.credit_account,
       hl.lot_id, hl.amount_points AS portion_points, l.expires_at_us AS lot_expires_at_us, l.earned_on AS lot_earned_on
FROM locked JOIN holds h ON h.hold_id = %(id)s
LEFT JOIN hold_lots hl ON hl.hold_id = h.hold_id LEFT JOIN {EVERY_LOT} l ON l.lot_id = hl.lot_id
ORDER BY hl.position
"""
_LOAD_HOLD = f"""
SELECT h.account, h.amount_points, h.state, h.expires_at_us, h.code, h.fingerprint, h.created_at_us, h.reference,
       h.metadata_json, h.committed_points, h.credit_account,
       hl.lot_id, hl.amount_points AS portion_points, l.expires_at_us AS lot_expires_at_us, l.earned_on AS lot_earned_on
FROM holds h LEFT JOIN hold_lots hl ON hl.hold_id = h.hold_id LEFT JOIN {EVERY_LOT} l ON l.lot_id = hl.lot_id
WHERE h.hold_id = %(id)s ORDER BY hl.position
"""

# Resolves a hold that is still pending: the uncommitted portions go back to their lots, held points and balance drop.
# Every other part joins hold_update, guarded by `state = 1`: a hold resolved meanwhile writes nothing (the count
# says which). A commit to a system account adds its own parts to this.
_RESOLVE_PENDING = """
hold_update AS (
    UPDATE holds SET state = %(state)s::smallint, committed_points = %(amount)s::bigint, credit_account = %(credit)s,
                     resolved_at_us = %(now)s::bigint
    WHERE hold_id = %(id)s AND state = 1
    RETURNING hold_id
), back AS (
    SELECT b.* FROM unnest(%(back_ids)s::bigint[], %(back_points)s::bigint[]) AS b(lot_id, points), hold_update
), lot_update AS (
    UPDATE lots SET remaining_points = lots.remaining_points + back.points FROM back WHERE lots.lot_id = back.lot_id
), recent_lot_update AS (
    UPDATE recent_lots SET remaining_points = recent_lots.remaining_points + back.points FROM back
    WHERE recent_lots.lot_id = back.lot_id
), account_update AS (
    UPDATE accounts SET balance_points = accounts.balance_points - %(amount)s::bigint,
                        held_points = accounts.held_points - %(held)s::bigint
    FROM hold_update WHERE account = %(account)s
)"""
_RESOLVE = f"WITH {_RESOLVE_PENDING}\nSELECT count(*) AS resolved FROM hold_update"
# A commit to a system account also posts transfer id = hold id (one journal batch, its lot records) and adds the
# amount to one shard of the credit account.
_COMMIT_TO_SYSTEM = f"""WITH {_RESOLVE_PENDING}, batch AS (
    INSERT INTO journal_batches (entries_count, entries_hash, created_at_us)
    SELECT 1, %(digest)s, %(now)s::bigint FROM hold_update
    RETURNING batch_id
), transfer_insert AS (
    INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,
                           co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, debit_balance_after)
    SELECT %(id)s, batch_id, %(account)s, %(credit)s, %(amount)s::bigint, %(code)s::smallint, %(reference)s, 0,
           %(metadata)s, 0, %(now)s::bigint, %(fingerprint)s, %(balance_after)s::bigint
    FROM batch
), portion_insert AS (
    INSERT INTO transfer_lots (transfer_id, side, position, lot_id, amount_points)
    SELECT %(id)s, 'D', (t.ord - 1)::smallint, t.lot_id, t.points
    FROM unnest(%(taken_ids)s::bigint[], %(taken_points)s::bigint[]) WITH ORDINALITY AS t(lot_id, points, ord), batch
), shard_update AS (
    INSERT INTO system_balances (account, shard, balance_points)
    SELECT %(credit)s, %(shard)s::smallint, %(amount)s::bigint FROM hold_update
    ON CONFLICT (account, shard) DO UPDATE SET balance_points = system_balances.balance_points + excluded.balance_points
)
SELECT count(*) AS resolved FROM hold_update
"""


@dataclass(frozen=True)
class Locked:
    balance_points: int
    held_points: int


def _cursor(conn: Connection) -> Any:
    """A cursor on the transaction's own driver connection whose rows name their columns."""
    from psycopg.rows import namedtuple_row  # here: a process on SQLite never imports the PostgreSQL driver

    return conn.connection.driver_connection.cursor(row_factory=namedtuple_row)  # type: ignore[union-attr]


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """All rows of one prepared statement. (A transaction's first statement is not sent in one pipeline with the
    driver's BEGIN: that saved a round trip but cost more Python per call than it saved, and the server is
    CPU-bound.)"""
    with _cursor(conn) as cursor:
        cursor.execute(sql, params, prepare=True)
        return list(cursor.fetchall())


def lock_for_hold(conn: Connection, account: str, hold_id: str, now_us: int) -> tuple[Locked, bool]:
    """Locks `account`; returns its balances and whether `hold_id` is already a hold's or a transfer's id."""
    (row,) = _rows(conn, _LOCK_FOR_HOLD, {"account": account, "id": hold_id, "now": now_us})
    return Locked(row.balance_points, row.held_points), bool(row.taken)


def release_expired(conn: Connection, accounts: list[str], now_us: int) -> dict[str, int]:
    """Releases the timed-out pending holds of locked accounts; returns the points released per account."""
    rows = _rows(conn, _RELEASE_EXPIRED, {"accounts": accounts, "now": now_us})
    return {row.account: int(row.points) for row in rows}


def take_hold(conn: Connection, hold: Hold) -> tuple[int, list[Portion]]:
    """Records a pending hold, its points taken FIFO; returns the spendable points before and the portions taken
    (none, and nothing written, when the spendable points do not cover the hold)."""
    params = {
        "id": hold.hold_id,
        "account": hold.account,
        "amount": hold.amount_points,
        "expires": hold.expires_at_us,
        "code": hold.code,
        "reference": hold.reference,
        "metadata": hold.metadata_json,
        "fingerprint": hold.fingerprint,
        "now": hold.created_at_us,
    }
    rows = _rows(conn, _TAKE_HOLD, params)
    portions = [
        Portion(LotKey(hold.account, row.expires_at_us, row.earned_on), row.take, row.lot_id)
        for row in rows
        if row.lot_id is not None
    ]
    return int(rows[0].available), portions


def lock_and_read_hold(conn: Connection, hold_id: str, now_us: int) -> tuple[Hold, int] | None:
    """Locks the held account; returns the hold as of before the lock, and the account's balance (current)."""
    rows = _rows(conn, _LOCK_AND_READ_HOLD, {"id": hold_id, "now": now_us})
    return None if not rows else (_hold_of(hold_id, rows), rows[0].balance_points)


def load_hold(conn: Connection, hold_id: str) -> Hold | None:
    """The hold with its reserved portions (as `store.holds.load_hold`), in one prepared query."""
    rows = _rows(conn, _LOAD_HOLD, {"id": hold_id})
    return _hold_of(hold_id, rows) if rows else None


def _hold_of(hold_id: str, rows: list[Any]) -> Hold:
    """The hold from its rows: one per portion (or one without a portion), the hold's columns alike in each."""
    first = rows[0]
    return Hold(
        hold_id=hold_id,
        account=first.account,
        amount_points=first.amount_points,
        state=HoldState(first.state),
        expires_at_us=first.expires_at_us,
        code=first.code,
        fingerprint=first.fingerprint,
        created_at_us=first.created_at_us,
        reference=first.reference,
        metadata_json=first.metadata_json,
        committed_points=first.committed_points,
        credit_account=first.credit_account,
        lots=[
            Portion(LotKey(first.account, row.lot_expires_at_us, row.lot_earned_on), row.portion_points, row.lot_id)
            for row in rows
            if row.lot_id is not None
        ],
    )


def resolve_without_posting(conn: Connection, hold: Hold, back: list[Portion], now_us: int) -> bool:
    """A release (or an expiry found on release): every portion goes back, nothing is spent. False (and nothing
    written) if the hold is no longer pending."""
    params = {
        **_back(back),
        "id": hold.hold_id,
        "account": hold.account,
        "amount": 0,
        "held": hold.amount_points,
        "state": int(hold.state),
        "credit": hold.credit_account,
        "now": now_us,
    }
    (row,) = _rows(conn, _RESOLVE, params)
    return bool(row.resolved)


def commit_to_system(
    conn: Connection,
    hold: Hold,
    taken: list[Portion],
    back: list[Portion],
    *,
    digest: str,
    fingerprint: str,
    balance_after: int,
    shard: int,
    now_us: int,
) -> bool:
    """Posts the committed part of a hold to a system account and returns the rest to the lots, in one statement.
    False (and nothing written) if the hold is no longer pending."""
    params = {
        **_back(back),
        "id": hold.hold_id,
        "account": hold.account,
        "state": int(hold.state),
        "credit": hold.credit_account,
        "amount": hold.committed_points,
        "held": hold.amount_points,
        "code": hold.code,
        "reference": hold.reference,
        "metadata": hold.metadata_json,
        "digest": digest,
        "fingerprint": fingerprint,
        "balance_after": balance_after,
        "taken_ids": [portion.lot_id for portion in taken],
        "taken_points": [portion.amount_points for portion in taken],
        "shard": shard,
        "now": now_us,
    }
    (row,) = _rows(conn, _COMMIT_TO_SYSTEM, params)
    return bool(row.resolved)


def _back(portions: list[Portion]) -> dict[str, list[Any]]:
    return {
        "back_ids": [portion.lot_id for portion in portions],
        "back_points": [portion.amount_points for portion in portions],
    }
