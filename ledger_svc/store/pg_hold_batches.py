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
from json import dumps
from typing import Any

from sqlalchemy import Connection

from ledger_svc.domain.holds import Hold
from ledger_svc.domain.lots import LotKey, LotState, Portion, UserAccount
from ledger_svc.domain.transfers import Posting
from ledger_svc.store.holds import hold_from_row
from ledger_svc.store.pg_holds import _rows
from ledger_svc.store.tables import EVERY_LOT

_SPENDABLE_LOTS = f"""
SELECT lot_id, account, expires_at_us, earned_on, remaining_points FROM {EVERY_LOT} AS lots
WHERE account = ANY(%(accounts)s::text[]) AND remaining_points > 0 AND expires_at_us > %(now)s
"""
_TAKEN_IDS = """
SELECT hold_id AS id FROM holds WHERE hold_id = ANY(%(ids)s::text[])
UNION ALL SELECT transfer_id FROM transfers WHERE transfer_id = ANY(%(ids)s::text[])
"""
_HOLD_ACCOUNTS = "SELECT hold_id, account FROM holds WHERE hold_id = ANY(%(ids)s::text[])"
_LOAD_HOLDS = f"""
SELECT h.hold_id, h.account, h.amount_points, h.state, h.expires_at_us, h.code, h.fingerprint, h.created_at_us,
       h.reference, h.metadata_json, h.committed_points, h.credit_account,
       hl.lot_id, hl.amount_points AS portion_points, l.expires_at_us AS lot_expires_at_us, l.earned_on AS lot_earned_on
FROM holds h LEFT JOIN hold_lots hl ON hl.hold_id = h.hold_id LEFT JOIN {EVERY_LOT} l ON l.lot_id = hl.lot_id
WHERE h.hold_id = ANY(%(ids)s::text[]) ORDER BY h.hold_id, hl.position
"""
# Each part takes its rows as one JSON array of arrays (json.dumps and PostgreSQL's JSON parser are both C: four times
# faster than the driver's array parameters, one per column, at 250 rows) and writes nothing when it is empty. The
# journal batch is inserted only when there are transfers. A lot changed by id is in one of the two lot tables.
_WRITE = """
WITH lot_change AS (
    SELECT (v->>0)::bigint AS lot_id, v->>1 AS account, (v->>2)::bigint AS points
    FROM json_array_elements(%(lots)s::json) AS v
), lot_update AS (
    UPDATE lots SET remaining_points = lots.remaining_points + c.points FROM lot_change c
    WHERE lots.lot_id = c.lot_id AND lots.account = c.account
), recent_lot_update AS (
    UPDATE recent_lots SET remaining_points = recent_lots.remaining_points + c.points FROM lot_change c
    WHERE recent_lots.lot_id = c.lot_id AND recent_lots.account = c.account
), hold_insert AS (
    INSERT INTO holds (hold_id, account, amount_points, state, expires_at_us, committed_points, credit_account, code,
                       reference, metadata_json, fingerprint, created_at_us, resolved_at_us)
    SELECT v->>0, v->>1, (v->>2)::bigint, (v->>3)::smallint, (v->>4)::bigint, (v->>5)::bigint, v->>6,
           (v->>7)::smallint, v->>8, v->>9, v->>10, %(now)s::bigint,
           CASE WHEN (v->>3)::smallint = 1 THEN NULL ELSE %(now)s::bigint END
    FROM json_array_elements(%(holds)s::json) AS v
), portion_insert AS (
    INSERT INTO hold_lots (hold_id, position, lot_id, amount_points)
    SELECT v->>0, (v->>1)::smallint, (v->>2)::bigint, (v->>3)::bigint FROM json_array_elements(%(portions)s::json) AS v
), hold_update AS (
    UPDATE holds SET state = (v->>1)::smallint, committed_points = (v->>2)::bigint, credit_account = v->>3,
                     resolved_at_us = %(now)s::bigint
    FROM json_array_elements(%(resolved)s::json) AS v
    WHERE holds.hold_id = v->>0
), batch AS (
    INSERT INTO journal_batches (entries_count, entries_hash, created_at_us)
    SELECT %(count)s::integer, %(digest)s, %(now)s::bigint WHERE %(count)s::integer > 0
    RETURNING batch_id
), transfer_insert AS (
    INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,
                           co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, debit_balance_after)
    SELECT v->>0, batch.batch_id, v->>1, v->>2, (v->>3)::bigint, (v->>4)::smallint, v->>5, 0, v->>6, 0,
           %(now)s::bigint, v->>7, (v->>8)::bigint
    FROM batch, json_array_elements(%(transfers)s::json) AS v
), transfer_lot_insert AS (
    INSERT INTO transfer_lots (transfer_id, side, position, lot_id, amount_points)
    SELECT v->>0, 'D', (v->>1)::smallint, (v->>2)::bigint, (v->>3)::bigint
    FROM json_array_elements(%(transfer_lots)s::json) AS v
), account_update AS (
    UPDATE accounts SET balance_points = (v->>1)::bigint, held_points = (v->>2)::bigint
    FROM json_array_elements(%(accounts)s::json) AS v
    WHERE accounts.account = v->>0
), system_update AS (
    INSERT INTO system_balances (account, shard, balance_points)
    SELECT v->>0, %(shard)s::smallint, (v->>1)::bigint FROM json_array_elements(%(system)s::json) AS v
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
            hold = found[row.hold_id] = hold_from_row(row)
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
    placed, postings = writes.placed, writes.postings
    params: dict[str, Any] = {
        "now": writes.now_us,
        "lots": dumps(writes.lot_changes),
        "holds": dumps(
            [
                (
                    h.hold_id,
                    h.account,
                    h.amount_points,
                    int(h.state),
                    h.expires_at_us,
                    h.committed_points,
                    h.credit_account,
                    h.code,
                    h.reference,
                    h.metadata_json,
                    h.fingerprint,
                )
                for h in placed
            ]
        ),
        "portions": dumps([(h.hold_id, n, p.lot_id, p.amount_points) for h in placed for n, p in enumerate(h.lots)]),
        "resolved": dumps([(h.hold_id, int(h.state), h.committed_points, h.credit_account) for h in writes.resolved]),
        "count": len(postings),
        "digest": writes.digest,
        "transfers": dumps(
            [
                (
                    t.transfer_id,
                    t.debit_account,
                    t.credit_account,
                    t.amount_points,
                    t.code,
                    t.reference,
                    t.metadata_json,
                    t.fingerprint,
                    t.debit_balance_after,
                )
                for t in postings
            ]
        ),
        "transfer_lots": dumps(
            [(t.transfer_id, n, p.lot_id, p.amount_points) for t in postings for n, p in enumerate(t.debit_lots)]
        ),
        "accounts": dumps([(u.account, u.balance_points, u.held_points) for u in writes.accounts]),
        "system": dumps(sorted((name, delta) for name, delta in writes.system_deltas.items() if delta)),
        "shard": writes.shard,
    }
    _rows(conn, _WRITE, params)
