"""Probe (ADR 0137): the write side of recent lots kept apart from the per-account lots, on a kept preloaded schema
(bench_ledger_earn.py with CARBON_BENCH_KEEP=1), by hand, as ADR 0135's probes were.

`apply` renames `lots` (every lot, keyed account first) to `lots_by_account` with its indexes, and creates an empty
`lots` of the same columns, lot ids from the same sequence, keyed day first, `UNIQUE (earned_on, account,
expires_at_us)`, with the sweep's index and the refill trigger; then it moves the lots earned today or later (China)
into it. The credit path is unchanged: its `ON CONFLICT (account, expires_at_us, earned_on)` infers the day-first
key (the same set of columns), so a credit upserts the small recent structure only, which is what the design's credit
does. The readers are not exercised: this measures credits only.

`move` is the design's mover, timed: it moves every lot of the recent structure earned before `until` (default: all)
into `lots_by_account` in account order, in batches of `batch` lots, each batch one transaction (insert with the same
lot ids, then delete). `revert` moves all and puts the schema back as main has it. `statement on|off` swaps
ix_transfers_credit for the seq-bucketed statement index of width 2^18 (ADR 0135's addendum) and back. `reads` (after
`apply`) times an account's spendable lots in FIFO order as the holds read them, from the per-account structure
alone and from both (the recent one probed once per day it spans, its first and last day read off its key's ends:
PostgreSQL 15 has no skip scan), beside a primary-key select of the account; server time (EXPLAIN ANALYZE, warm,
median of 30 per account) and buffers.

    CARBON_BENCH_DATABASE_URL=... python bench/probe_recent_lots.py <schema> apply|move [batch]|revert|statement on|off

    CARBON_BENCH_DATABASE_URL=... python bench/probe_recent_lots.py <schema> reads
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime

from bench_ledger_support import account_number, database_url  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from ledger_svc.domain.time import day_of, to_us

_COLUMNS = "lot_id, account, earned_on, expires_at_us, credited_points, remaining_points, expired_points"
_APPLY = [
    "ALTER TABLE lots RENAME TO lots_by_account",
    "ALTER INDEX uq_lots_key RENAME TO uq_lots_by_account_key",
    "ALTER INDEX ix_lots_expiring RENAME TO ix_lots_by_account_expiring",
    "ALTER INDEX lots_pkey RENAME TO lots_by_account_pkey",
    """CREATE TABLE lots (LIKE lots_by_account INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)
       WITH (fillfactor = 50)""",
    "ALTER TABLE lots ADD PRIMARY KEY (lot_id)",
    "ALTER TABLE lots ADD CONSTRAINT uq_lots_key UNIQUE (earned_on, account, expires_at_us)",
    "CREATE INDEX ix_lots_expiring ON lots (expires_at_us, lot_id)",
    """CREATE TRIGGER lots_requeue_refilled AFTER UPDATE OF remaining_points ON lots FOR EACH ROW
       WHEN (OLD.remaining_points = 0 AND NEW.remaining_points > 0) EXECUTE FUNCTION lots_requeue_refilled()""",
    f"INSERT INTO lots ({_COLUMNS}) SELECT {_COLUMNS} FROM lots_by_account WHERE earned_on >= :today",
    "DELETE FROM lots_by_account WHERE earned_on >= :today",
    "ANALYZE lots, lots_by_account",
]
_REVERT = [
    "DROP TABLE lots",
    "ALTER TABLE lots_by_account RENAME TO lots",
    "ALTER INDEX uq_lots_by_account_key RENAME TO uq_lots_key",
    "ALTER INDEX ix_lots_by_account_expiring RENAME TO ix_lots_expiring",
    "ALTER INDEX lots_by_account_pkey RENAME TO lots_pkey",
    "ANALYZE lots",
]
# One batch of the mover: the next `batch` lots of closed days in account order after the cursor, copied with their
# ids into the per-account structure, then deleted from the recent one (a repeated batch copies nothing twice: the
# per-account key refuses it, and what it already copied is gone from the recent structure).
_MOVE_BATCH = f"""
WITH batch AS (
    SELECT lot_id FROM lots WHERE earned_on < :until ORDER BY earned_on, account COLLATE "C" LIMIT :batch
), moved AS (
    INSERT INTO lots_by_account ({_COLUMNS})
    SELECT {_COLUMNS} FROM lots WHERE lot_id IN (SELECT lot_id FROM batch) ORDER BY account COLLATE "C"
    ON CONFLICT DO NOTHING
    RETURNING lot_id
)
DELETE FROM lots WHERE lot_id IN (SELECT lot_id FROM moved)
"""
_STATEMENT_ON = [
    "DROP INDEX ix_transfers_credit",
    """CREATE INDEX ix_transfers_credit_bucket18 ON transfers ((seq >> 18), credit_account, seq)
       WHERE credit_account <> 'system:expiry'""",
]
_STATEMENT_OFF = [
    "DROP INDEX ix_transfers_credit_bucket18",
    "CREATE INDEX ix_transfers_credit ON transfers (credit_account, seq) WHERE credit_account <> 'system:expiry'",
]


_SPENDABLE = "lot_id, expires_at_us, earned_on, remaining_points"
_READS = {
    "pk select": "SELECT balance_points, held_points FROM accounts WHERE account = :a",
    "spendable, per-account only": f"""
        SELECT {_SPENDABLE} FROM lots_by_account WHERE account = :a AND remaining_points > 0 AND expires_at_us > :now
        ORDER BY expires_at_us, earned_on, lot_id""",
    "spendable, both structures": f"""
        SELECT {_SPENDABLE} FROM (
            SELECT {_SPENDABLE} FROM lots_by_account
            WHERE account = :a AND remaining_points > 0 AND expires_at_us > :now
            UNION ALL
            SELECT {_SPENDABLE} FROM lots
            WHERE earned_on = ANY(ARRAY(SELECT CAST(d AS date) FROM generate_series(
                      (SELECT min(earned_on) FROM lots), (SELECT max(earned_on) FROM lots), interval '1 day') d))
              AND account = :a AND remaining_points > 0 AND expires_at_us > :now
        ) l ORDER BY expires_at_us, earned_on, lot_id""",
}
READ_ACCOUNTS = [account_number(n) for n in range(1, 200_000, 4001)]  # accounts the bench credits: lots in both
READ_REPEATS = 30


def reads(conn: Connection) -> dict[str, object]:
    """Per read form: the median over the sample of each account's median server time (ms), and of its buffers."""
    now_us = to_us(datetime.now(UTC))
    figures: dict[str, object] = {}
    for name, query in _READS.items():
        times: list[float] = []
        buffers: list[int] = []
        rows: list[int] = []
        for account in READ_ACCOUNTS:
            runs = []
            for _ in range(READ_REPEATS):
                plan = conn.execute(
                    text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}"), {"a": account, "now": now_us}
                ).scalar_one()[0]
                runs.append((plan["Execution Time"], plan["Plan"].get("Shared Hit Blocks", 0), plan["Plan"]))
            times.append(statistics.median(run[0] for run in runs))
            buffers.append(runs[-1][1] + runs[-1][2].get("Shared Read Blocks", 0))
            rows.append(runs[-1][2]["Actual Rows"])
        figures[name] = {
            "server_ms_median": round(statistics.median(times), 3),
            "buffers_median": statistics.median(buffers),
            "rows_median": statistics.median(rows),
        }
    return figures


def _sizes(conn: Connection) -> dict[str, object]:
    names = ["lots", "uq_lots_key", "lots_by_account", "uq_lots_by_account_key"]
    return {
        name: conn.execute(text("SELECT pg_size_pretty(pg_relation_size(to_regclass(:n)))"), {"n": name}).scalar()
        for name in names
    }


def move(engine_url: str, batch: int, until: str | None) -> dict[str, object]:
    """The mover's batches until nothing is left before `until`: lots moved, seconds, per-batch milliseconds."""
    engine = create_engine(engine_url)
    bound = until or "9999-12-31"
    moved = 0
    times: list[float] = []
    started = time.perf_counter()
    while True:
        begun = time.perf_counter()
        with engine.begin() as conn:
            count = conn.execute(text(_MOVE_BATCH), {"until": bound, "batch": batch}).rowcount
        times.append(time.perf_counter() - begun)
        moved += count
        if count == 0:
            break
    elapsed = time.perf_counter() - started
    engine.dispose()
    ordered = sorted(times)
    return {
        "moved_lots": moved,
        "seconds": round(elapsed, 2),
        "lots_per_s": round(moved / elapsed) if elapsed else 0,
        "batches": len(times),
        "batch_ms_median": round(1000 * ordered[len(ordered) // 2], 1),
        "batch_ms_max": round(1000 * ordered[-1], 1),
    }


def main() -> None:
    schema, command = sys.argv[1], sys.argv[2]
    url = (
        make_url(database_url())
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = create_engine(url)
    today = day_of(to_us(datetime.now(UTC)))
    report: dict[str, object] = {"command": command}
    started = time.perf_counter()
    if command == "apply":
        with engine.begin() as conn:
            for statement in _APPLY:
                conn.execute(text(statement), {"today": today})
            report["sizes"] = _sizes(conn)
    elif command == "move":
        batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
        report.update(move(url, batch, sys.argv[4] if len(sys.argv) > 4 else None))
    elif command == "revert":
        report.update(move(url, 1000, None))
        with engine.begin() as conn:
            for statement in _REVERT:
                conn.execute(text(statement))
    elif command == "reads":
        with engine.connect() as conn:
            report["accounts"] = len(READ_ACCOUNTS)
            report.update(reads(conn))
    elif command == "statement":
        with engine.begin() as conn:
            for statement in _STATEMENT_ON if sys.argv[3] == "on" else _STATEMENT_OFF:
                conn.execute(text(statement))
            conn.execute(text("ANALYZE transfers"))
    else:
        raise SystemExit(__doc__)
    report["total_s"] = round(time.perf_counter() - started, 2)
    engine.dispose()
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
