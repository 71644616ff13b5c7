"""Batched holds on PostgreSQL (ADR 0132): reads and writes over arrays, a handful of statements per batch whatever
its size, sent straight to the driver as `pg_holds` does.

The general store functions send one SQLAlchemy statement per table and an executemany per row set; here a batch
reads in three or four statements (lock, spendable lots, taken ids; or the holds with their portions) and writes
everything in one statement of CTEs over unnest(): lots, holds and their portions, the journal batch with its
transfers and their lots, the accounts and this thread's system shards. Every row it touches belongs to an account
the batch locked first (in account order), so batches wait for each other but never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger_svc.domain.holds import Hold, HoldState
from ledger_svc.domain.lots import LotKey, LotState, Portion, UserAccount
from ledger_svc.domain.transfers import Posting
from ledger_svc.store.pg_holds import _rows

_SPENDABLE_LOTS = """
SELECT lot_id, account, expires_at_us, earned_on, remaining_points FROM lots
WHERE account = ANY(%(accounts)s::text[]) AND remaining_points > 0 AND expires_at_us > %(now)s
"""
_TAKEN_IDS = """
SELECT hold_id AS id FROM holds WHERE hold_id = ANY(%(ids)s::text[])
UNION ALL SELECT transfer_id FROM transfers WHERE transfer_id = ANY(%(ids)s::text[])
"""
_HOLD_ACCOUNTS = "SELECT hold_id, account FROM holds WHERE hold_id = ANY(%(ids)s::text[])"
_LOAD_HOLDS = """
SELECT h.hold_id, h.account, h.amount_points, h.state, h.expires_at_us, h.code, h.fingerprint, h.created_at_us,
       h.reference, h.metadata_json, h.committed_points, h.credit_account,
       hl.lot_id, hl.amount_points AS portion_points, l.expires_at_us AS lot_expires_at_us, l.earned_on AS lot_earned_on
FROM holds h LEFT JOIN hold_lots hl ON hl.hold_id = h.hold_id LEFT JOIN lots l ON l.lot_id = hl.lot_id
WHERE h.hold_id = ANY(%(ids)s::text[]) ORDER BY h.hold_id, hl.position
"""
# Each part writes nothing when its arrays are empty. The journal batch is inserted only when there are transfers.
_WRITE = """
WITH lot_update AS (
    UPDATE lots SET remaining_points = lots.remaining_points + v.d
    FROM unnest(%(lot_ids)s::bigint[], %(lot_accounts)s::text[], %(lot_deltas)s::bigint[]) AS v(id, a, d)
    WHERE lots.lot_id = v.id AND lots.account = v.a
), hold_insert AS (
    INSERT INTO holds (hold_id, account, amount_points, state, expires_at_us, committed_points, credit_account, code,
                       reference, metadata_json, fingerprint, created_at_us, resolved_at_us)
    SELECT v.id, v.account, v.amount, v.state, v.expires, v.committed, v.credit, v.code, v.reference, v.metadata,
           v.fingerprint, %(now)s::bigint, CASE WHEN v.state = 1 THEN NULL ELSE %(now)s::bigint END
    FROM unnest(%(h_ids)s::text[], %(h_accounts)s::text[], %(h_amounts)s::bigint[], %(h_states)s::smallint[],
                %(h_expires)s::bigint[], %(h_committed)s::bigint[], %(h_credits)s::text[], %(h_codes)s::smallint[],
                %(h_references)s::text[], %(h_metadata)s::text[], %(h_fingerprints)s::text[])
         AS v(id, account, amount, state, expires, committed, credit, code, reference, metadata, fingerprint)
), portion_insert AS (
    INSERT INTO hold_lots (hold_id, position, lot_id, amount_points)
    SELECT * FROM unnest(%(p_holds)s::text[], %(p_positions)s::smallint[], %(p_lots)s::bigint[],
                         %(p_amounts)s::bigint[])
), hold_update AS (
    UPDATE holds SET state = v.state, committed_points = v.committed, credit_account = v.credit,
                     resolved_at_us = %(now)s::bigint
    FROM unnest(%(r_ids)s::text[], %(r_states)s::smallint[], %(r_committed)s::bigint[], %(r_credits)s::text[])
         AS v(id, state, committed, credit)
    WHERE holds.hold_id = v.id
), batch AS (
    INSERT INTO journal_batches (entries_count, entries_hash, created_at_us)
    SELECT %(count)s::integer, %(digest)s, %(now)s::bigint WHERE %(count)s::integer > 0
    RETURNING batch_id
), transfer_insert AS (
    INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,
                           co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, debit_balance_after)
    SELECT v.id, batch.batch_id, v.debit, v.credit, v.amount, v.code, v.reference, 0, v.metadata, 0, %(now)s::bigint,
           v.fingerprint, v.balance_after
    FROM batch, unnest(%(t_ids)s::text[], %(t_debits)s::text[], %(t_credits)s::text[], %(t_amounts)s::bigint[],
                       %(t_codes)s::smallint[], %(t_references)s::text[], %(t_metadata)s::text[],
                       %(t_fingerprints)s::text[], %(t_balances)s::bigint[])
         AS v(id, debit, credit, amount, code, reference, metadata, fingerprint, balance_after)
), transfer_lot_insert AS (
    INSERT INTO transfer_lots (transfer_id, side, position, lot_id, amount_points)
    SELECT v.id, 'D', v.position, v.lot, v.amount
    FROM unnest(%(tl_ids)s::text[], %(tl_positions)s::smallint[], %(tl_lots)s::bigint[], %(tl_amounts)s::bigint[])
         AS v(id, position, lot, amount)
), account_update AS (
    UPDATE accounts SET balance_points = v.b, held_points = v.h
    FROM unnest(%(a_names)s::text[], %(a_balances)s::bigint[], %(a_helds)s::bigint[]) AS v(n, b, h)
    WHERE accounts.account = v.n
), system_update AS (
    INSERT INTO system_balances (account, shard, balance_points)
    SELECT v.a, %(shard)s::smallint, v.d FROM unnest(%(s_accounts)s::text[], %(s_deltas)s::bigint[]) AS v(a, d)
    ON CONFLICT (account, shard) DO UPDATE SET balance_points = system_balances.balance_points + excluded.balance_points
)
SELECT 1
"""


def load_spendable_lots(conn: Connection, users: Mapping[str, UserAccount], now_us: int) -> None:
    """As accounts.load_spendable_lots: the unexpired, non-empty lots of locked accounts, in one statement."""
    if not users:
        return
    for row in _rows(conn, _SPENDABLE_LOTS, {"accounts": sorted(users), "now": now_us}):
        key = LotKey(row.account, row.expires_at_us, row.earned_on)
        users[row.account].lots[key] = LotState(key, row.remaining_points, row.lot_id)


def taken_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Which of `ids` a hold or a transfer already has."""
    return {row.id for row in _rows(conn, _TAKEN_IDS, {"ids": sorted(set(ids))})}


def hold_accounts(conn: Connection, hold_ids: Iterable[str]) -> dict[str, str]:
    return {row.hold_id: row.account for row in _rows(conn, _HOLD_ACCOUNTS, {"ids": sorted(set(hold_ids))})}


def load_holds(conn: Connection, hold_ids: Iterable[str]) -> dict[str, Hold]:
    """The holds that exist among `hold_ids`, with their portions, in one statement."""
    found: dict[str, Hold] = {}
    for row in _rows(conn, _LOAD_HOLDS, {"ids": sorted(set(hold_ids))}):
        hold = found.get(row.hold_id)
        if hold is None:
            hold = found[row.hold_id] = Hold(
                hold_id=row.hold_id,
                account=row.account,
                amount_points=row.amount_points,
                state=HoldState(row.state),
                expires_at_us=row.expires_at_us,
                code=row.code,
                fingerprint=row.fingerprint,
                created_at_us=row.created_at_us,
                reference=row.reference,
                metadata_json=row.metadata_json,
                committed_points=row.committed_points,
                credit_account=row.credit_account,
            )
        if row.lot_id is not None:
            key = LotKey(row.account, row.lot_expires_at_us, row.lot_earned_on)
            hold.lots.append(Portion(key, row.portion_points, row.lot_id))
    return found


@dataclass(frozen=True)
class BatchWrites:
    """Everything one batch writes. Lot changes are (lot id, account, remaining points delta); transfers are commits
    to system accounts (debit lots only); accounts are (name, balance, held) as they end."""

    lot_changes: list[tuple[int, str, int]]
    placed: list[Hold]
    resolved: list[Hold]
    postings: list[Posting]
    digest: str
    accounts: list[UserAccount]
    system_deltas: Mapping[str, int]
    shard: int
    now_us: int


def write(conn: Connection, writes: BatchWrites) -> None:
    """Writes a batch in one statement."""
    placed, resolved, postings = writes.placed, writes.resolved, writes.postings
    portions = [(h.hold_id, position, p) for h in placed for position, p in enumerate(h.lots)]
    debit_lots = [(t.transfer_id, position, p) for t in postings for position, p in enumerate(t.debit_lots)]
    system = sorted((name, delta) for name, delta in writes.system_deltas.items() if delta)
    params: dict[str, Any] = {
        "now": writes.now_us,
        "lot_ids": [change[0] for change in writes.lot_changes],
        "lot_accounts": [change[1] for change in writes.lot_changes],
        "lot_deltas": [change[2] for change in writes.lot_changes],
        "h_ids": [h.hold_id for h in placed],
        "h_accounts": [h.account for h in placed],
        "h_amounts": [h.amount_points for h in placed],
        "h_states": [int(h.state) for h in placed],
        "h_expires": [h.expires_at_us for h in placed],
        "h_committed": [h.committed_points for h in placed],
        "h_credits": [h.credit_account for h in placed],
        "h_codes": [h.code for h in placed],
        "h_references": [h.reference for h in placed],
        "h_metadata": [h.metadata_json for h in placed],
        "h_fingerprints": [h.fingerprint for h in placed],
        "p_holds": [row[0] for row in portions],
        "p_positions": [row[1] for row in portions],
        "p_lots": [row[2].lot_id for row in portions],
        "p_amounts": [row[2].amount_points for row in portions],
        "r_ids": [h.hold_id for h in resolved],
        "r_states": [int(h.state) for h in resolved],
        "r_committed": [h.committed_points for h in resolved],
        "r_credits": [h.credit_account for h in resolved],
        "count": len(postings),
        "digest": writes.digest,
        "t_ids": [t.transfer_id for t in postings],
        "t_debits": [t.debit_account for t in postings],
        "t_credits": [t.credit_account for t in postings],
        "t_amounts": [t.amount_points for t in postings],
        "t_codes": [t.code for t in postings],
        "t_references": [t.reference for t in postings],
        "t_metadata": [t.metadata_json for t in postings],
        "t_fingerprints": [t.fingerprint for t in postings],
        "t_balances": [t.debit_balance_after for t in postings],
        "tl_ids": [row[0] for row in debit_lots],
        "tl_positions": [row[1] for row in debit_lots],
        "tl_lots": [row[2].lot_id for row in debit_lots],
        "tl_amounts": [row[2].amount_points for row in debit_lots],
        "a_names": [user.account for user in writes.accounts],
        "a_balances": [user.balance_points for user in writes.accounts],
        "a_helds": [user.held_points for user in writes.accounts],
        "s_accounts": [row[0] for row in system],
        "s_deltas": [row[1] for row in system],
        "shard": writes.shard,
    }
    _rows(conn, _WRITE, params)
