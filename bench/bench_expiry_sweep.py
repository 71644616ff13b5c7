"""Benchmark: the scheduled expiry sweep (the scheduler's run: lease, progress counted in each batch's transaction)
of 1 million expired lots, beside a same-run baseline of raw set-based writes of the same row count: one UPDATE that
empties every row of a plain copy of the lots, and one DELETE of them. ratio = baseline / sweep (target >= 0.3).

CARBON_BENCH_EXPIRY_LOTS sets the lot count (default 1,000,000); CARBON_BENCH_EXPIRY_BATCH the lots per transaction.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

from bench_ledger_expiry import LOTS, NOW, seed  # type: ignore[import-not-found,unused-ignore]
from bench_ledger_support import REGION, private_schema  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import Engine, text

from ledger_svc.domain.jobs import Job, RunState, Schedule
from ledger_svc.service import audit, scheduler
from ledger_svc.service.context import LedgerContext
from service_kit import db

BATCH = int(os.environ.get("CARBON_BENCH_EXPIRY_BATCH", "10000"))


def raw_writes(engine: Engine) -> tuple[float, float]:
    """Seconds of one UPDATE emptying every raw row, and of one DELETE of them all."""
    with engine.begin() as conn:
        started = time.perf_counter()
        updated = conn.execute(text("UPDATE raw_lots SET points = 0 WHERE points > 0")).rowcount
        update_s = time.perf_counter() - started
        started = time.perf_counter()
        deleted = conn.execute(text("DELETE FROM raw_lots")).rowcount
        delete_s = time.perf_counter() - started
    assert updated == deleted == LOTS, (updated, deleted)
    return update_s, delete_s


def main() -> None:
    with private_schema("bench_expiry_sweep") as url:
        engine = db.make_engine(url)
        db.migrate("ledger_svc", engine)
        seed(engine, LOTS)
        update_s, delete_s = raw_writes(engine)
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
    print(f"baseline: UPDATE of {LOTS:,} rows {update_s:.1f} s + DELETE of them {delete_s:.1f} s = {baseline_s:.1f} s")
    print(f"scheduled expiry sweep: {LOTS:,} lots, {run.points:,} points in {sweep_s:.1f} s; balanced={balanced}")
    print(
        json.dumps(
            {
                "bench": "expiry_sweep",
                "lots": LOTS,
                "batch": BATCH,
                "sweep_s": round(sweep_s, 2),
                "lots_per_s": round(LOTS / sweep_s),
                "baseline_update_s": round(update_s, 2),
                "baseline_delete_s": round(delete_s, 2),
                "baseline_s": round(baseline_s, 2),
                "ratio": round(baseline_s / sweep_s, 3),
                "balanced": balanced,
            }
        )
    )


if __name__ == "__main__":
    main()
