"""The expiry sweep on PostgreSQL, set-based: a batch of expired lots is emptied by one UPDATE, its transfers and
lot records go in by COPY, balances by one UPDATE over arrays. Lock order as everywhere: accounts, lots, shards."""

from __future__ import annotations

from sqlalchemy import Connection, text

from ledger_svc.domain.expiry import SweptLot
from ledger_svc.store.credits import copy_into

# Keyset order: each batch starts after the last lot of the previous one, so a sweep never rescans the index
# entries it emptied (they stay there, dead, until vacuum).
_CANDIDATES = text(
    """
    SELECT lot_id, account, expires_at_us FROM lots
    WHERE remaining_points > 0 AND expires_at_us <= :cutoff AND (expires_at_us, lot_id) > (:after_expiry, :after_id)
    ORDER BY expires_at_us, lot_id LIMIT :limit
    """
)
# Locks the accounts (in account order) and returns their balances.
_LOCK_ACCOUNTS = text(
    """
    SELECT account, balance_points, held_points FROM accounts
    WHERE account = ANY(CAST(:names AS text[])) ORDER BY account FOR UPDATE
    """
)
# Under the accounts' locks no one else writes these lots; the CTE keeps what each held before it is emptied.
_EMPTY_LOTS = text(
    """
    WITH swept AS (
        SELECT lot_id, remaining_points AS points, expired_points AS before FROM lots
        WHERE lot_id = ANY(CAST(:ids AS bigint[])) AND remaining_points > 0 AND expires_at_us <= :cutoff
        ORDER BY lot_id FOR UPDATE
    )
    UPDATE lots SET remaining_points = 0, expired_points = swept.before + swept.points
    FROM swept WHERE lots.lot_id = swept.lot_id
    RETURNING lots.lot_id, lots.account, lots.expires_at_us, lots.earned_on, swept.points, swept.before
    """
)
_SUBTRACT = text(
    """
    UPDATE accounts SET balance_points = accounts.balance_points - v.p
    FROM unnest(CAST(:names AS text[]), CAST(:points AS bigint[])) AS v(n, p)
    WHERE accounts.account = v.n
    """
)


def expired_lot_candidates(
    conn: Connection, cutoff_us: int, limit: int, after: tuple[int, int]
) -> list[tuple[int, str, int]]:
    """Up to `limit` (lot_id, account, expires_at_us) of lots with points left that expired by the cutoff, in
    (expiry, id) order after `after`."""
    parameters = {"cutoff": cutoff_us, "limit": limit, "after_expiry": after[0], "after_id": after[1]}
    return [(row[0], row[1], row[2]) for row in conn.execute(_CANDIDATES, parameters)]


def lock_accounts(conn: Connection, names: list[str]) -> dict[str, tuple[int, int]]:
    rows = conn.execute(_LOCK_ACCOUNTS, {"names": sorted(set(names))})
    return {row[0]: (row[1], row[2]) for row in rows}


def empty_lots(conn: Connection, lot_ids: list[int], cutoff_us: int) -> list[SweptLot]:
    rows = conn.execute(_EMPTY_LOTS, {"ids": lot_ids, "cutoff": cutoff_us})
    return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]


def subtract_from_accounts(conn: Connection, per_account: dict[str, int]) -> None:
    names = sorted(per_account)
    conn.execute(_SUBTRACT, {"names": names, "points": [per_account[name] for name in names]})


_COPY_TRANSFERS = (
    "COPY transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,"
    " co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, debit_balance_after) FROM STDIN"
)
_COPY_TRANSFER_LOTS = "COPY transfer_lots (transfer_id, side, position, lot_id, amount_points) FROM STDIN"


def copy_expiry_transfers(
    conn: Connection, rows: list[tuple[str, str, str, int, int, str, int, str, int, int, str, int]], batch_id: int
) -> None:
    """Rows without the batch id: (transfer_id, debit, credit, points, code, reference, co2e, metadata, earned_at,
    posted_at, fingerprint, debit_balance_after)."""
    with copy_into(conn, _COPY_TRANSFERS) as copy:
        for row in rows:
            copy.write_row((row[0], batch_id, *row[1:]))


def copy_expiry_lots(conn: Connection, rows: list[tuple[str, str, int, int, int]]) -> None:
    with copy_into(conn, _COPY_TRANSFER_LOTS) as copy:
        for row in rows:
            copy.write_row(row)
