"""The expiry sweep on PostgreSQL, set-based: a batch of expired lots is emptied, and their accounts debited, by one
statement; its transfers and lot records go in by COPY. Lock order as everywhere: accounts, lots, shards."""

from __future__ import annotations

from sqlalchemy import Connection, text

from ledger_svc.domain.expiry import SweptLot
from service_kit.pg_copy import copy_into

# Keyset order: each batch starts after the last lot of the previous one, so a sweep never rescans the index
# entries it emptied (they stay there, dead, until vacuum). `has_points` (= remaining_points > 0) is what the
# partial index ix_lots_expiring is on: the planner uses the index only when the query names it.
_CANDIDATES = text(
    """
    SELECT lot_id, account, expires_at_us FROM lots
    WHERE has_points AND expires_at_us <= :cutoff AND (expires_at_us, lot_id) > (:after_expiry, :after_id)
    ORDER BY expires_at_us, lot_id LIMIT :limit
    """
)
# Locks the accounts (in account order) and returns their balances.
_LOCK_ACCOUNTS = text(
    """
    SELECT account, balance_points, held_points FROM accounts
    WHERE account = ANY(string_to_array(:names, ',')) ORDER BY account FOR UPDATE
    """
)
# Under the accounts' locks no one else writes these lots, so they need no lock of their own before the UPDATE
# (a FOR UPDATE here wrote a lock record per lot); the CTE keeps what each held before it is emptied, and the
# accounts lose what their lots lost in the same statement.
_EMPTY_LOTS = text(
    """
    WITH swept AS (
        SELECT lot_id, remaining_points AS points, expired_points AS before FROM lots
        WHERE lot_id = ANY(CAST(string_to_array(:ids, ',') AS bigint[]))
          AND remaining_points > 0 AND expires_at_us <= :cutoff
    ), emptied AS (
        UPDATE lots SET remaining_points = 0, expired_points = swept.before + swept.points
        FROM swept WHERE lots.lot_id = swept.lot_id
        RETURNING lots.lot_id, lots.account, lots.expires_at_us, lots.earned_on, swept.points, swept.before
    ), per_account AS (
        SELECT account, sum(points)::bigint AS points FROM emptied GROUP BY account
    ), subtracted AS (
        UPDATE accounts SET balance_points = accounts.balance_points - per_account.points
        FROM per_account WHERE accounts.account = per_account.account
    )
    SELECT lot_id, account, expires_at_us, earned_on, points, before FROM emptied
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
    rows = conn.execute(_LOCK_ACCOUNTS, {"names": ",".join(sorted(set(names)))})
    return {row[0]: (row[1], row[2]) for row in rows}


def empty_lots(conn: Connection, lot_ids: list[int], cutoff_us: int) -> list[SweptLot]:
    """Empties the lots (of locked accounts) and takes what they held off their accounts' balances."""
    rows = conn.execute(_EMPTY_LOTS, {"ids": ",".join(map(str, lot_ids)), "cutoff": cutoff_us})
    return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]


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
    # Ids, accounts, references and fingerprints the sweep made itself: nothing in them needs COPY's escapes.
    lines = [
        f"{r[0]}\t{batch_id}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5]}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\t{r[10]}\t{r[11]}\n"
        for r in rows
    ]
    with copy_into(conn, _COPY_TRANSFERS) as copy:
        copy.write("".join(lines))


def copy_expiry_lots(conn: Connection, rows: list[tuple[str, str, int, int, int]]) -> None:
    lines = [f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]}\n" for r in rows]
    with copy_into(conn, _COPY_TRANSFER_LOTS) as copy:
        copy.write("".join(lines))
