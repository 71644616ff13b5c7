"""The expiry sweep on PostgreSQL, set-based (ADRs 0102, 0119): a batch of expired lots is swept by two statements,
the lock of its accounts (in account order) and one statement that empties the lots, debits the accounts and writes
the batch's journal (its batch row with the entries' hash, the transfers, their lot records). No lot passes through
Python. Lock order as everywhere: accounts, lots, shards."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, text

from ledger_svc.domain.expiry import ExpiryCandidate
from ledger_svc.domain.names import TransferCode
from service_kit.accounts import EXPIRY_ACCOUNT

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
# Locks the accounts in account order (LockRows above the sort), as every writer does before touching lots.
_LOCK_ACCOUNTS = text(
    """
    SELECT count(*) FROM (
        SELECT 1 FROM accounts WHERE account = ANY(string_to_array(:names, ',')) ORDER BY account FOR UPDATE
    ) AS locked
    """
)


def _canonical(expression: str) -> str:
    """`domain/journal.canonical_bytes` of one field in SQL: its UTF-8 bytes after their 4-byte big-endian length."""
    return f"int4send(length(convert_to({expression}, 'UTF8'))) || convert_to({expression}, 'UTF8')"


_ENTRY_BYTES = " || ".join(
    _canonical(field)
    for field in (
        "transfer_id",
        "account",
        ":expiry",
        "points::text",
        ":code_text",
        ":now_text",
        "reference",
        "'0'",
        "''",
    )
)
# Under the accounts' locks no one else writes these lots, so they need no lock of their own; `swept` keeps what
# each held before it is emptied. `entries` are domain/expiry.expiry_transfers' transfers: the same ids, references
# and balances-after (each account's balance as locked, less its lots' points in lot key order, then lot id); the
# plain read of accounts sees them before `debited` changes them (one snapshot for the whole statement). The batch
# hash is domain/journal.entries_hash (transfer_id order in bytes: COLLATE "C"), the fingerprint
# domain/expiry.expire_fingerprint. Every data-modifying part runs to completion whether read or not.
_SWEEP_BATCH = text(
    f"""
    WITH swept AS (
        SELECT lot_id, remaining_points AS points, expired_points AS before FROM lots
        WHERE lot_id = ANY(CAST(string_to_array(:ids, ',') AS bigint[]))
          AND remaining_points > 0 AND expires_at_us <= :cutoff
    ), emptied AS (
        UPDATE lots SET remaining_points = 0, expired_points = swept.before + swept.points
        FROM swept WHERE lots.lot_id = swept.lot_id
        RETURNING lots.lot_id, lots.account, lots.expires_at_us, lots.earned_on, swept.points, swept.before
    ), entries AS (
        SELECT 'expire:' || e.lot_id || ':' || e.before AS transfer_id, e.account, e.points, e.lot_id,
               'lot:' || e.lot_id AS reference,
               a.balance_points - sum(e.points) OVER (
                   PARTITION BY e.account ORDER BY e.expires_at_us, e.earned_on, e.lot_id
               ) AS balance_after
        FROM emptied AS e JOIN accounts AS a ON a.account = e.account
    ), batch AS (
        INSERT INTO journal_batches (entries_count, entries_hash, created_at_us)
        SELECT count(*), encode(sha256(string_agg({_ENTRY_BYTES}, ''::bytea ORDER BY transfer_id COLLATE "C")), 'hex'),
               :now
        FROM entries HAVING count(*) > 0
        RETURNING batch_id
    ), journal AS (
        INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,
                               co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, debit_balance_after)
        SELECT transfer_id, batch.batch_id, account, :expiry, points, :code, reference, 0, '', 0, :now,
               left(encode(sha256(convert_to('["expire","' || transfer_id || '",' || points || ']', 'UTF8')), 'hex'),
                    32),
               balance_after
        FROM entries CROSS JOIN batch
    ), lot_records AS (
        INSERT INTO transfer_lots (transfer_id, side, position, lot_id, amount_points)
        SELECT transfer_id, 'D', 0, lot_id, points FROM entries
    ), debited AS (
        UPDATE accounts SET balance_points = accounts.balance_points - per_account.points
        FROM (SELECT account, sum(points)::bigint AS points FROM entries GROUP BY account) AS per_account
        WHERE accounts.account = per_account.account
    )
    SELECT count(*) AS lots, coalesce(sum(points), 0)::bigint AS points FROM entries
    """
)
_EXPIRE = int(TransferCode.EXPIRE)


class SweptBatch(NamedTuple):
    lots: int
    points: int


def expired_lot_candidates(
    conn: Connection, cutoff_us: int, limit: int, after: ExpiryCandidate | None
) -> list[ExpiryCandidate]:
    """Up to `limit` lots with points left that expired by the cutoff, in (expiry, id) order after `after` (None:
    from the first)."""
    after_expiry, after_id = (after.expires_at_us, after.lot_id) if after else (-(2**63), -(2**63))
    parameters = {"cutoff": cutoff_us, "limit": limit, "after_expiry": after_expiry, "after_id": after_id}
    return list(map(ExpiryCandidate._make, conn.execute(_CANDIDATES, parameters)))


def lock_accounts(conn: Connection, names: list[str]) -> int:
    """Locks the accounts (sorted) for the rest of the transaction; returns how many exist."""
    return int(conn.execute(_LOCK_ACCOUNTS, {"names": ",".join(sorted(set(names)))}).scalar_one())


def sweep_lots(conn: Connection, lot_ids: list[int], cutoff_us: int, now_us: int) -> SweptBatch:
    """Empties the lots (of locked accounts) that still hold expired points into system:expiry, one transfer per
    lot, in one journal batch; returns how many lots and points it swept."""
    parameters = {
        "ids": ",".join(map(str, lot_ids)),
        "cutoff": cutoff_us,
        "now": now_us,
        "now_text": str(now_us),
        "expiry": EXPIRY_ACCOUNT,
        "code": _EXPIRE,
        "code_text": str(_EXPIRE),
    }
    row = conn.execute(_SWEEP_BATCH, parameters).one()
    return SweptBatch(int(row.lots), int(row.points))
