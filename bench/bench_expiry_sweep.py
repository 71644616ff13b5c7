"""Benchmark: the scheduled expiry sweep (the scheduler's run: lease, progress counted in each batch's transaction)
of 1 million expired lots, beside same-run baselines of raw writes of the same row count on a plain keyed copy of
the lots, no bookkeeping at all:
- batched (`ratio`): what a competent hand-written sweep does, batch by batch of the sweep's batch size, one
  transaction each: read the next batch of keys holding points (keyset order), one UPDATE emptying them and one
  DELETE of them (`WHERE id = ANY(keys)`);
- keyed (`ratio_keyed`): each row emptied by its key (UPDATE ... WHERE id = ?) and then deleted by its key, in
  transactions of the sweep's batch size (executemany: one statement per row);
- one statement (`ratio_one_statement`): one UPDATE of every row and one DELETE of them all.
ratio = baseline seconds / sweep seconds (target >= 0.3 for the batched baseline).

CARBON_BENCH_EXPIRY_LOTS sets the lot count (default 1,000,000); CARBON_BENCH_EXPIRY_BATCH the lots per transaction;
CARBON_BENCH_EXPIRY_KEYED=0 leaves out the keyed baseline (minutes at 1 million rows; `ratio_keyed` is then null).
The lots are written day by day, as the services write them (CARBON_BENCH_EXPIRY_LAYOUT=account: account by account,
the layout measured before ADR 0133; bench_ledger_expiry.py says how each lies); the baselines' copies keep the same
row order.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

from bench_ledger_expiry import (  # type: ignore[import-not-found,unused-ignore]
    BATCH,
    LOTS,
    NOW,
    keyed_writes,
    raw_writes,
    seed,
)
from bench_ledger_support import REGION, private_schema  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Engine, text

from ledger_svc.domain.jobs import Job, RunState, Schedule
from ledger_svc.service import audit, scheduler
from ledger_svc.service.context import LedgerContext
from service_kit import db


def copy_for_batched(engine: Engine) -> None:
    """The batched baseline's own keyed copy, made from raw_keyed before keyed_writes empties it (not timed)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE raw_batched AS SELECT * FROM raw_keyed"))
        conn.execute(text("ALTER TABLE raw_batched ADD PRIMARY KEY (id)"))
        conn.execute(text("ANALYZE raw_batched"))


BATCH_KEYS = "SELECT id FROM raw_batched WHERE id > %s AND points > 0 ORDER BY id LIMIT %s"
BATCH_WRITES = ("UPDATE raw_batched SET points = 0 WHERE id = ANY(%s)", "DELETE FROM raw_batched WHERE id = ANY(%s)")


def batched_writes(engine: Engine) -> float:
    """Seconds to sweep raw_batched as a hand-written batched sweep would: per transaction, the next BATCH keys that
    hold points, one UPDATE emptying them and one DELETE of them."""
    started = time.perf_counter()
    raw = engine.raw_connection()
    swept = 0
    try:
        driver = raw.driver_connection
        assert driver is not None
        after = 0
        while True:
            with driver.cursor() as cursor:
                keys = [row[0] for row in cursor.execute(BATCH_KEYS, (after, BATCH)).fetchall()]
                for statement in BATCH_WRITES:
                    cursor.execute(statement, (keys,))
            driver.commit()
            swept += len(keys)
            if len(keys) < BATCH:
                break
            after = keys[-1]
    finally:
        raw.close()
    assert swept == LOTS, swept
    return time.perf_counter() - started


def main() -> None:
    with private_schema("bench_expiry_sweep") as url:
        engine = db.make_engine(url)
        db.migrate("ledger_svc", engine)
        seed(engine, LOTS)
        update_s, delete_s = raw_writes(engine)
        copy_for_batched(engine)
        keyed_s = keyed_writes(engine) if os.environ.get("CARBON_BENCH_EXPIRY_KEYED", "1") != "0" else None
        batched_s = batched_writes(engine)
        ledger = LedgerContext(engine, REGION, lambda: NOW)
        leader = scheduler.Scheduler(
            ledger, Schedule(), timedelta(minutes=5), expiry_batch=BATCH, holder="bench", jobs=frozenset({Job.EXPIRY})
        )
        started = time.perf_counter()
        assert leader.tick()
        sweep_s = time.perf_counter() - started
        runs, _, _ = scheduler.list_job_runs(ledger, Job.EXPIRY.value, 1)
        run = runs[0]
        assert (run.state, run.items) == (RunState.DONE, LOTS), run
        balanced = audit.check_conservation(ledger).balanced
        engine.dispose()
    baseline_s = update_s + delete_s
    print(f"baseline, batched: {LOTS:,} rows, {BATCH:,} a transaction, UPDATE + DELETE per batch in {batched_s:.1f} s")
    if keyed_s is not None:
        print(f"baseline, keyed: {LOTS:,} rows updated then deleted by key in {keyed_s:.1f} s")
    print(f"baseline, one statement: UPDATE {update_s:.1f} s + DELETE {delete_s:.1f} s = {baseline_s:.1f} s")
    print(f"scheduled expiry sweep: {LOTS:,} lots, {run.points:,} points in {sweep_s:.1f} s; balanced={balanced}")
    print(
        json.dumps(
            {
                "bench": "expiry_sweep",
                "lots": LOTS,
                "batch": BATCH,
                "sweep_s": round(sweep_s, 2),
                "lots_per_s": round(LOTS / sweep_s),
                "baseline_batched_s": round(batched_s, 2),
                "baseline_keyed_s": None if keyed_s is None else round(keyed_s, 2),
                "baseline_one_statement_s": round(baseline_s, 2),
                "ratio": round(batched_s / sweep_s, 3),
                "ratio_keyed": None if keyed_s is None else round(keyed_s / sweep_s, 3),
                "ratio_one_statement": round(baseline_s / sweep_s, 3),
                "balanced": balanced,
            }
        )
    )


if __name__ == "__main__":
    main()
