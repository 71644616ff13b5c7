"""The scheduler's lease and job runs (portable SQL: the same statements on PostgreSQL and SQLite)."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from ledger_svc.domain.jobs import Job, JobRun, RunState
from ledger_svc.store.dialects import dialect_insert
from ledger_svc.store.tables import job_leases, job_runs
from service_kit import leader_lease

SCHEDULER_LEASE = "scheduler"
MAX_ERROR_LENGTH = 2000


def take_lease(conn: Connection, holder: str, now_us: int, until_us: int, name: str = SCHEDULER_LEASE) -> bool:
    """Takes or renews the lease for `holder` until `until_us` (service_kit.leader_lease)."""
    return leader_lease.take_lease(conn, job_leases, name, holder, now_us, until_us)


def give_up_lease(conn: Connection, holder: str, name: str = SCHEDULER_LEASE) -> None:
    """Frees the lease at once if `holder` has it (a replica stopping), so another takes over without waiting."""
    leader_lease.give_up_lease(conn, job_leases, name, holder)


def lease_holder(conn: Connection, name: str = SCHEDULER_LEASE) -> tuple[str, int]:
    return leader_lease.lease_holder(conn, job_leases, name)


def load_run(conn: Connection, job: Job, period: str) -> JobRun | None:
    row = conn.execute(select(job_runs).where(job_runs.c.job == job.value, job_runs.c.period == period)).first()
    return None if row is None else _run(row)


def latest_runs(conn: Connection, job: Job | None, limit: int, period: str = "") -> list[JobRun]:
    """The runs most recently worked on, newest first (of one job, or of all; of one period, or of all)."""
    query = select(job_runs).order_by(job_runs.c.updated_at_us.desc(), job_runs.c.job).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job.value)
    if period:
        query = query.where(job_runs.c.period == period)
    return [_run(row) for row in conn.execute(query)]


def unfinished_runs(conn: Connection) -> list[JobRun]:
    """Runs QUEUED by an operator or left RUNNING, oldest first: the leader works on them beside its own periods."""
    states = (RunState.QUEUED.value, RunState.RUNNING.value)
    query = select(job_runs).where(job_runs.c.state.in_(states)).order_by(job_runs.c.started_at_us, job_runs.c.job)
    return [_run(row) for row in conn.execute(query)]


def queue_run(conn: Connection, job: Job, period: str, now_us: int) -> JobRun:
    """An operator's request for the period's run: a new run QUEUED, a FAILED one QUEUED again, any other left as it
    is (a DONE run is not run twice). Returns the run as it stands."""
    conn.execute(
        dialect_insert(conn, job_runs)
        .values(
            job=job.value, period=period, state=RunState.QUEUED.value, started_at_us=now_us, updated_at_us=now_us,
            finished_at_us=0, items=0, points=0, batches=0, attempts=0, holder="", error="",
        )
        .on_conflict_do_nothing()
    )  # fmt: skip
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job.value, job_runs.c.period == period, job_runs.c.state == RunState.FAILED.value)
        .values(state=RunState.QUEUED.value, updated_at_us=now_us)
    )
    run = load_run(conn, job, period)
    assert run is not None
    return run


def start_run(conn: Connection, job: Job, period: str, holder: str, now_us: int) -> None:
    """Marks the period's run RUNNING for `holder` (created, or resumed with one more attempt); its counts stay."""
    existing = load_run(conn, job, period)
    if existing is None:
        conn.execute(
            dialect_insert(conn, job_runs)
            .values(
                job=job.value, period=period, state=RunState.RUNNING.value, started_at_us=now_us,
                updated_at_us=now_us, finished_at_us=0, items=0, points=0, batches=0, attempts=1, holder=holder,
                error="",
            )
            .on_conflict_do_nothing()
        )  # fmt: skip
        return
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job.value, job_runs.c.period == period)
        .values(
            state=RunState.RUNNING.value, updated_at_us=now_us, attempts=job_runs.c.attempts + 1, holder=holder,
            error="",
        )
    )  # fmt: skip


def add_progress(conn: Connection, job: Job, period: str, items: int, points: int, now_us: int) -> None:
    """Counts one batch into the run; called in the batch's own transaction, so the counts are exactly what
    committed, whoever dies when."""
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job.value, job_runs.c.period == period)
        .values(
            items=job_runs.c["items"] + items,
            points=job_runs.c.points + points,
            batches=job_runs.c.batches + 1,
            updated_at_us=now_us,
        )
    )


def finish_run(conn: Connection, job: Job, period: str, now_us: int, error: str = "") -> None:
    state = RunState.FAILED if error else RunState.DONE
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job.value, job_runs.c.period == period)
        .values(state=state.value, updated_at_us=now_us, finished_at_us=now_us, error=error[:MAX_ERROR_LENGTH])
    )


def _run(row: object) -> JobRun:
    values = row._mapping  # type: ignore[attr-defined]
    return JobRun(
        job=Job(values["job"]),
        period=str(values["period"]),
        state=RunState(values["state"]),
        started_at_us=int(values["started_at_us"]),
        updated_at_us=int(values["updated_at_us"]),
        finished_at_us=int(values["finished_at_us"]),
        items=int(values["items"]),
        points=int(values["points"]),
        batches=int(values["batches"]),
        attempts=int(values["attempts"]),
        holder=str(values["holder"]),
        error=str(values["error"]),
    )
