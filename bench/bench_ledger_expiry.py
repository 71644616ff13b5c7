"""Benchmark (c): the expiry sweep's use case (ExpirePoints, batches of CARBON_BENCH_EXPIRY_BATCH) over 1 million
expired lots, beside the same-run baseline of bench_expiry_sweep.py: each row of a plain keyed copy of the lots
emptied by its key and then deleted by its key, in transactions of the same batch size (the least per-row writing a
sweep of individual lots can do). `ratio` = baseline seconds ÷ sweep seconds (higher is better). Also the module of
the expiry benches' seed and baselines."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

from bench_ledger_support import REGION, private_schema  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Engine, text

from ledger_svc.service import audit, expiry
from ledger_svc.service.context import LedgerContext
from service_kit import db

LOTS = int(os.environ.get("CARBON_BENCH_EXPIRY_LOTS", "1000000"))
LOTS_PER_ACCOUNT = 10
BATCH = int(os.environ.get("CARBON_BENCH_EXPIRY_BATCH", "10000"))
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
# Lots earned 2023-01-01 .. 2023-01-10 expire 2025-01-01 .. 2025-01-10 (CST): all expired by NOW.
# LAYOUT "day" (the default) writes the lots as the services do: day by day, as each day's credits arrive (in no
# account order: a hash of account and day stands for arrival), so a day's lots sit on adjacent pages and a sweep in
# expiry order reads each page once. LAYOUT "account" is the layout measured before ADR 0133: account by account,
# each account's ten days adjacent, so a sweep in expiry order comes back to every page once per day of backlog.
LAYOUT = os.environ.get("CARBON_BENCH_EXPIRY_LAYOUT", "day")
_ORDER = {"day": "d, md5(a.account || d)", "account": "a.n, d"}[LAYOUT]
SEED = (
    """
WITH a AS (
  SELECT g AS n, '{region}' || lpad(g::text, 10, '0') AS account FROM generate_series(1, :accounts) g
)
INSERT INTO {table}
SELECT {columns}
FROM a CROSS JOIN generate_series(0, :per_account - 1) d
ORDER BY """
    + _ORDER
    + "\n"
)


def seed(engine: Engine, lots: int) -> float:
    """`lots` expired lots (LOTS_PER_ACCOUNT per account, laid out as LAYOUT says) with their accounts, balances and
    earn journal, on a migrated ledger; also raw_lots, the same rows in a plain table, in the same order. Returns
    the seconds raw_lots' insert took."""
    accounts = lots // LOTS_PER_ACCOUNT
    params = {"accounts": accounts, "per_account": LOTS_PER_ACCOUNT}
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE raw_lots (account text, day int, points bigint)"))
        started = time.perf_counter()
        conn.execute(text(SEED.format(region=REGION, table="raw_lots", columns="account, d, 10")), params)
        raw_s = time.perf_counter() - started
        # Ids numbered in the insert's order (a nextval here could be drawn before the sort).
        lot_columns = (
            f"row_number() OVER (ORDER BY {_ORDER}), account, date '2023-01-01' + d, "
            "extract(epoch from (timestamp '2025-01-01' + d * interval '1 day' - interval '8 hours'))::bigint"
            " * 1000000, 10, 10, 0"
        )
        conn.execute(text(SEED.format(region=REGION, table="lots", columns=lot_columns)), params)
        conn.execute(text("SELECT setval('lots_lot_id_seq', (SELECT max(lot_id) FROM lots))"))
        conn.execute(
            text(
                # Every seeded lot is in lots: its account is moved through its last day (ADR 0137).
                "INSERT INTO accounts (account, balance_points, held_points, created_at_us, lots_moved_through)"
                f" SELECT '{REGION}' || lpad(g::text, 10, '0'), :points, 0, 0, (SELECT max(earned_on) FROM lots)"
                " FROM generate_series(1, :accounts) g"
            ),
            {"accounts": accounts, "points": 10 * LOTS_PER_ACCOUNT},
        )
        conn.execute(text("INSERT INTO system_balances VALUES ('system:issuance', 0, :total)"), {"total": -10 * lots})
        # The journal of the seed: one earn per lot, so the ledger conserves (balances = journal sums).
        conn.execute(
            text(
                "INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code,"
                " reference, co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint)"
                " SELECT 'seed:' || lot_id, 0, 'system:issuance', account, 10, 1, '', 0, '', 0, 0, '' FROM lots"
            )
        )
        conn.execute(text("ANALYZE"))
    return raw_s


def raw_writes(engine: Engine) -> tuple[float, float]:
    """Seconds of one UPDATE emptying every raw row, and of one DELETE of them all."""
    with engine.begin() as conn:
        # The keyed copy for keyed_writes, made before raw_lots is emptied (not timed).
        conn.execute(text("CREATE TABLE raw_keyed AS SELECT row_number() OVER () AS id, * FROM raw_lots"))
        conn.execute(text("ALTER TABLE raw_keyed ADD PRIMARY KEY (id)"))
        started = time.perf_counter()
        updated = conn.execute(text("UPDATE raw_lots SET points = 0 WHERE points > 0")).rowcount
        update_s = time.perf_counter() - started
        started = time.perf_counter()
        deleted = conn.execute(text("DELETE FROM raw_lots")).rowcount
        delete_s = time.perf_counter() - started
    assert updated == deleted == LOTS, (updated, deleted)
    return update_s, delete_s


def keyed_writes(engine: Engine) -> float:
    """Seconds to empty every row of raw_keyed by its key and then delete it by its key, BATCH rows a transaction."""
    statements = ("UPDATE raw_keyed SET points = 0 WHERE id = %s", "DELETE FROM raw_keyed WHERE id = %s")
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        for statement in statements:
            for first in range(1, LOTS + 1, BATCH):
                with driver.cursor() as cursor:
                    cursor.executemany(statement, [(n,) for n in range(first, min(first + BATCH, LOTS + 1))])
                driver.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def main() -> None:
    with private_schema("bench_expiry") as url:
        engine = db.make_engine(url)
        db.migrate("ledger_svc", engine)
        raw_s = seed(engine, LOTS)
        raw_writes(engine)  # makes the keyed copy
        keyed_s = keyed_writes(engine)
        ledger = LedgerContext(engine, REGION, lambda: NOW)
        started = time.perf_counter()
        outcome = expiry.expire_points(ledger, None, batch_size=BATCH, max_batches=0)
        sweep_s = time.perf_counter() - started
        assert outcome.lots_expired == LOTS and outcome.done, outcome
        balanced = audit.check_conservation(ledger).balanced
        engine.dispose()
    print(f"baseline, keyed: {LOTS:,} rows updated then deleted by key in {keyed_s:.1f} s (raw insert {raw_s:.1f} s)")
    print(f"expiry sweep: {LOTS:,} lots, {outcome.points_expired:,} points in {sweep_s:.1f} s; balanced={balanced}")
    print(
        json.dumps(
            {
                "bench": "ledger_expiry",
                "lots": LOTS,
                "sweep_s": round(sweep_s, 1),
                "lots_per_s": round(LOTS / sweep_s),
                "raw_insert_s": round(raw_s, 1),
                "baseline_keyed_s": round(keyed_s, 2),
                "ratio": round(keyed_s / sweep_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
