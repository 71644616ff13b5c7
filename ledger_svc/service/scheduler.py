"""The region's scheduler: every ledger replica runs one; the one holding the lease runs the due jobs (ADR 0108).

A tick takes or renews the lease, then works on each due run (domain/jobs.py). Long runs go in steps of a few
batches, renewing the lease between steps and stopping when it is lost; each batch counts its progress in its own
transaction, so a run's counts are exactly what committed. A replica that takes over a dead leader's lease resumes
the run left RUNNING: the expiry sweep finds only lots that still hold expired points, so nothing expires twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Connection

from ledger_svc.domain.expiry import ExpiryOutcome
from ledger_svc.domain.jobs import (
    REQUESTABLE,
    Job,
    JobRun,
    Schedule,
    close_period,
    expiry_period,
    is_due,
    move_lots_period,
    reminders_period,
    requested_period,
)
from ledger_svc.domain.time import US_PER_SECOND, day_of
from ledger_svc.service import audit, expiry, holds, lot_mover, periods, reminders
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.metrics import LedgerMetrics
from ledger_svc.store import jobs as job_store
from service_kit import telemetry
from service_kit.errors import InvalidArgument
from service_kit.leader_lease import LeaderLoop, LeaseLost, replica_name

log = logging.getLogger("carbon.ledger.scheduler")
# Expiry batches per step: between steps the leader renews its lease, well within the lease's length.
EXPIRY_BATCHES_PER_STEP = 5
MOVE_BATCHES_PER_STEP = 5
HOLD_BATCH = 1000


class Scheduler:
    def __init__(
        self,
        ctx: LedgerContext,
        schedule: Schedule,
        lease: timedelta,
        *,
        tick_s: float = 5.0,
        expiry_batch: int = 1000,
        move_lots_batch: int = lot_mover.BATCH_ACCOUNTS,
        holder: str = "",
        jobs: frozenset[Job] = frozenset(Job),
        reminder_queue: reminders.ReminderQueue | None = None,
    ) -> None:
        self._ctx = ctx
        self._points = LedgerMetrics(ctx.region_code)
        self._schedule = schedule
        self._lease_us = int(lease.total_seconds() * US_PER_SECOND)
        self._expiry_batch = expiry_batch
        self._move_lots_batch = move_lots_batch
        self.holder = holder or replica_name()
        # Without identity to queue reminders in, the reminder job does not run (and a requested run waits).
        self._jobs = jobs if reminder_queue is not None else jobs - {Job.REMINDERS}
        self._reminder_queue = reminder_queue
        self._loop = LeaderLoop("ledger-scheduler", self.tick, self._give_up, tick_s, log)
        meter = telemetry.meter("carbon.ledger.jobs")
        self._items = meter.create_counter("ledger.job.items", unit="{item}", description="lots or holds a job moved")
        self._runs = meter.create_counter("ledger.job.runs", unit="{run}", description="job runs by outcome")
        self._duration = meter.create_histogram("ledger.job.duration", unit="s", description="time of a job run")

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Ends the loop after the current step and frees the lease, so another replica takes over at once."""
        self._loop.stop()

    def _give_up(self) -> None:
        self._ctx.transaction(lambda conn: job_store.give_up_lease(conn, self.holder))

    def tick(self) -> bool:
        """One pass: False when another replica leads; else every due run is worked on until done."""
        if not self._renew():
            return False
        now_us = self._ctx.now_us()
        day = expiry_period(now_us, self._schedule)
        if day is not None:
            self._maybe_run(Job.EXPIRY, day, None, self._run_expiry)
        self._maybe_run(Job.MONTHLY_CLOSE, close_period(now_us, self._schedule), None, self._run_close)
        today = day_of(self._ctx.now_us()).isoformat()
        self._maybe_run(Job.HOLD_TIMEOUTS, today, self._schedule.hold_sweep_every, self._run_hold_sweep)
        move_day = move_lots_period(now_us, self._schedule)
        if move_day is not None:
            self._maybe_run(Job.MOVE_LOTS, move_day, None, self._run_move_lots)
        reminder_day = reminders_period(now_us, self._schedule)
        if reminder_day is not None:
            self._maybe_run(Job.REMINDERS, reminder_day, None, self._run_reminders)
        self._run_unfinished()
        return True

    def _run_unfinished(self) -> None:
        """Runs an operator asked for (QUEUED), and runs of other periods a dead leader left RUNNING."""
        work = {
            Job.EXPIRY: self._run_expiry,
            Job.MONTHLY_CLOSE: self._run_close,
            Job.HOLD_TIMEOUTS: self._run_hold_sweep,
            Job.REMINDERS: self._run_reminders,
            Job.MOVE_LOTS: self._run_move_lots,
        }
        with self._ctx.engine.connect() as conn:
            waiting = job_store.unfinished_runs(conn)
        for run in waiting:
            self._maybe_run(run.job, run.period, None, work[run.job])

    def _renew(self) -> bool:
        now_us = self._ctx.now_us()
        return self._ctx.transaction(
            lambda conn: job_store.take_lease(conn, self.holder, now_us, now_us + self._lease_us)
        )

    def _keep_lease(self) -> None:
        if self._loop.stopping or not self._renew():
            raise LeaseLost

    def _maybe_run(self, job: Job, period: str, every: timedelta | None, work: Callable[[str], None]) -> None:
        if job not in self._jobs:
            return
        with self._ctx.engine.connect() as conn:
            run = job_store.load_run(conn, job, period)
        if not is_due(run, self._ctx.now_us(), every, self._schedule):
            return
        self._keep_lease()  # the job before may have taken a while
        self._ctx.transaction(lambda conn: job_store.start_run(conn, job, period, self.holder, self._ctx.now_us()))
        started = time.monotonic()
        log.info("job run started", extra={"job": job.value, "period": period, "holder": self.holder})
        try:
            work(period)
        except LeaseLost:
            raise
        except Exception as error:
            failure = repr(error)
            self._ctx.transaction(lambda conn: job_store.finish_run(conn, job, period, self._ctx.now_us(), failure))
            self._runs.add(1, {"job": job.value, "outcome": "failed"})
            log.exception("job run failed", extra={"job": job.value, "period": period})
            return
        self._ctx.transaction(lambda conn: job_store.finish_run(conn, job, period, self._ctx.now_us()))
        self._runs.add(1, {"job": job.value, "outcome": "done"})
        self._duration.record(time.monotonic() - started, {"job": job.value})
        log.info("job run done", extra={"job": job.value, "period": period})

    def _progress(self, job: Job, period: str) -> Callable[[Connection, int, int], None]:
        def count(conn: Connection, items: int, points: int) -> None:
            job_store.add_progress(conn, job, period, items, points, self._ctx.now_us())
            self._items.add(items, {"job": job.value})

        return count

    def _run_expiry(self, period: str) -> None:
        """Today's sweep in steps; the cutoff (the start of today) takes every lot that expired on a missed night."""
        count = self._progress(Job.EXPIRY, period)

        def on_batch(conn: Connection, outcome: ExpiryOutcome) -> None:
            count(conn, outcome.lots_expired, outcome.points_expired)

        day = date.fromisoformat(period)
        after = None  # a run (or another leader's, resumed) starts with the queued lots, then after the watermark
        while True:
            step = expiry.expire_points(
                self._ctx, day, self._expiry_batch, EXPIRY_BATCHES_PER_STEP, on_batch=on_batch, after=after
            )
            after = step.resume_after
            # Scheduled sweeps count in carbon.points.expired as ExpirePoints calls do, once their step committed.
            self._points.expired(step.points_expired)
            if step.done:
                return
            self._keep_lease()

    def _run_move_lots(self, period: str) -> None:
        """The closed days' recent lots into the per-account lots, in steps; each batch counts the lots it moved."""
        count = self._progress(Job.MOVE_LOTS, period)
        through = lot_mover.closed_through(date.fromisoformat(period))
        after = ""  # a resumed run starts over: the accounts already moved have nothing left to move
        while True:
            step = lot_mover.move_lots(
                self._ctx,
                through,
                batch_accounts=self._move_lots_batch,
                max_batches=MOVE_BATCHES_PER_STEP,
                after=after,
                on_batch=lambda conn, moved, _accounts: count(conn, moved, 0),
            )
            if step.done:
                return
            after = step.resume_after
            self._keep_lease()

    def _run_hold_sweep(self, period: str) -> None:
        count = self._progress(Job.HOLD_TIMEOUTS, period)
        while holds.sweep_expired_holds(self._ctx, HOLD_BATCH, lambda conn, released: count(conn, released, 0)):
            self._keep_lease()

    def _run_reminders(self, period: str) -> None:
        """The day's notices into identity's outbox, counting those newly queued; the lease is kept between calls."""
        assert self._reminder_queue is not None
        count = self._progress(Job.REMINDERS, period)

        def on_batch(sent: int, queued: int) -> None:
            self._ctx.transaction(lambda conn: count(conn, queued, 0))
            self._keep_lease()

        reminders.remind(self._ctx, date.fromisoformat(period), self._reminder_queue, on_batch)

    def _run_close(self, period: str) -> None:
        """Month end: every batch chained into the journal's blocks and the region's points checked to balance; the
        run records the points outstanding at the close. Other month-end work (statements) hangs off this run."""
        self._ctx.seal_everything()
        checked = audit.check_conservation(self._ctx)
        if not checked.balanced:
            raise RuntimeError(f"conservation does not hold at the close of {period}: {'; '.join(checked.problems)}")
        # The month's figures stored once, immutable after (ADR 0110); a resumed run finds it closed and goes on.
        periods.close_through(self._ctx, period)
        count = self._progress(Job.MONTHLY_CLOSE, period)
        self._ctx.transaction(lambda conn: count(conn, 0, checked.outstanding_points))


DEFAULT_RUNS = 20
MAX_RUNS = 200


def list_job_runs(ctx: LedgerContext, job: str, limit: int, period: str = "") -> tuple[list[JobRun], str, int]:
    """ListJobRuns: the runs most recently worked on (of `job`, or of all; of `period`, or of all), and the lease's
    holder and expiry (the leader, while the expiry has not passed)."""
    if job and job not in {j.value for j in Job}:
        raise InvalidArgument("job", f"must be empty or one of {', '.join(j.value for j in Job)}")
    if not 0 <= limit <= MAX_RUNS:
        raise InvalidArgument("limit", f"must be between 0 (default {DEFAULT_RUNS}) and {MAX_RUNS}")
    if period and not job:
        raise InvalidArgument("period", "needs job")
    if len(period) > 16:
        raise InvalidArgument("period", "must be a day YYYY-MM-DD or a month YYYY-MM")
    with ctx.engine.connect() as conn:
        runs = job_store.latest_runs(conn, Job(job) if job else None, limit or DEFAULT_RUNS, period)
        holder, until_us = job_store.lease_holder(conn)
    return runs, holder, until_us


def start_job_run(ctx: LedgerContext, job: str, period: str, schedule: Schedule | None = None) -> JobRun:
    """StartJobRun: the period's run queued for the leader (or as it stands), idempotent per job and period."""
    if job not in {j.value for j in REQUESTABLE}:
        raise InvalidArgument("job", f"must be one of {', '.join(j.value for j in REQUESTABLE)}")
    now_us = ctx.now_us()
    try:
        checked = requested_period(Job(job), period, now_us, schedule or Schedule())
    except ValueError as error:
        raise InvalidArgument("period", str(error)) from None
    return ctx.transaction(lambda conn: job_store.queue_run(conn, Job(job), checked, now_us))
