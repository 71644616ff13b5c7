"""identity's scheduled job runs (ADR 0210): one row per job and China day, its state and count; and the leader
lease, through service_kit.leader_lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from identity_svc.store.tables import job_leases, job_runs
from service_kit import leader_lease

SCHEDULER_LEASE = "scheduler"
MAX_ERROR_LENGTH = 2000
RUNNING, DONE, FAILED = "RUNNING", "DONE", "FAILED"


def take_lease(conn: Connection, holder: str, now_us: int, until_us: int) -> bool:
    return leader_lease.take_lease(conn, job_leases, SCHEDULER_LEASE, holder, now_us, until_us)


def give_up_lease(conn: Connection, holder: str) -> None:
    leader_lease.give_up_lease(conn, job_leases, SCHEDULER_LEASE, holder)


def lease_holder(conn: Connection) -> tuple[str, int]:
    return leader_lease.lease_holder(conn, job_leases, SCHEDULER_LEASE)


def load_run(conn: Connection, job: str, period: str) -> Row[Any] | None:
    return conn.execute(select(job_runs).where(job_runs.c.job == job, job_runs.c.period == period)).first()


def latest_runs(conn: Connection, job: str, limit: int) -> list[Row[Any]]:
    """The job's runs, the most recent period first."""
    query = select(job_runs).where(job_runs.c.job == job).order_by(job_runs.c.period.desc()).limit(limit)
    return list(conn.execute(query).all())


def start_run(conn: Connection, job: str, period: str, holder: str, now: datetime) -> None:
    """Marks the period's run RUNNING for `holder`: created, or resumed with one more attempt (its count stays)."""
    if load_run(conn, job, period) is None:
        conn.execute(
            insert(job_runs).values(
                job=job, period=period, state=RUNNING, started_at=now, updated_at=now, finished_at=None, items=0,
                attempts=1, holder=holder, error="",
            )
        )  # fmt: skip
        return
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job, job_runs.c.period == period)
        .values(state=RUNNING, updated_at=now, attempts=job_runs.c.attempts + 1, holder=holder, error="")
    )


def add_items(conn: Connection, job: str, period: str, items: int, now: datetime) -> None:
    """Counts one batch, in the batch's own transaction: the count is exactly what committed."""
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job, job_runs.c.period == period)
        .values(items=job_runs.c["items"] + items, updated_at=now)
    )


def finish_run(conn: Connection, job: str, period: str, now: datetime, error: str = "") -> None:
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job, job_runs.c.period == period)
        .values(state=FAILED if error else DONE, updated_at=now, finished_at=now, error=error[:MAX_ERROR_LENGTH])
    )
