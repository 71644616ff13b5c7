"""The 14th-birthday hand-over, run by itself (issue 17, ADR 0210): a daily job shortly after 00:00 China time records
that control of a child's account passed to its holder (service.guardians.hand_over_due), on every replica with
CARBON_IDENTITY_SCHEDULER=1 but worked by one: the holder of the leader lease (service_kit.leader_lease, as the
ledger's scheduler, ADR 0108). A run per China day is a job_runs row: resumed when a leader died mid-run, retried
after a failure, its last state and count readable by operators. A missed night needs no backfill: a run hands over
every account whose 14th birthday began before it. The time is the service's clock, so a rehearsal offset (ADR 0015)
moves the job with everything else.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row

from identity_svc.service.guardians import hand_over_due
from identity_svc.store import jobs
from service_kit.clock import Clock, china_day, start_of_china_day
from service_kit.errors import InvalidArgument
from service_kit.leader_lease import LeaderLoop, LeaseLost, replica_name

log = logging.getLogger("carbon.identity.hand_over")

JOB = "guardian_hand_over"
# How long after the start of a China day its run starts: the birthdays of the day have begun by then.
RUN_AFTER = timedelta(minutes=5)
# A failed run (the database away) is tried again after this long.
RETRY_FAILED_AFTER = timedelta(minutes=5)
US_PER_SECOND = 1_000_000


def due_period(now: datetime) -> str | None:
    """The China day whose run is due at `now`, None in the first minutes of a day (yesterday's run covered them)."""
    day = china_day(now)
    return day.isoformat() if now >= start_of_china_day(day) + RUN_AFTER else None


def is_due(run: Row[Any] | None, now: datetime) -> bool:
    """Not run yet, left RUNNING (its leader died: resumed), or FAILED long enough ago."""
    if run is None or run.state == jobs.RUNNING:
        return True
    return bool(run.state == jobs.FAILED and now >= run.updated_at + RETRY_FAILED_AFTER)


class HandOverScheduler:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        lease: timedelta = timedelta(seconds=30),
        tick_s: float = 30.0,
        batch: int = 500,
        holder: str = "",
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._lease = lease
        self._batch = batch
        self.holder = holder or replica_name()
        self._loop = LeaderLoop("identity-hand-over", self.tick, self._give_up, tick_s, log)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Ends the loop after the current batch and frees the lease, so another replica takes over at once."""
        self._loop.stop()

    def _give_up(self) -> None:
        with self._engine.begin() as conn:
            jobs.give_up_lease(conn, self.holder)

    def tick(self) -> bool:
        """One pass: False when another replica leads; else today's run is worked on if it is due."""
        if not self._renew():
            return False
        now = self._clock()
        period = due_period(now)
        if period is None:
            return True
        with self._engine.connect() as conn:
            run = jobs.load_run(conn, JOB, period)
        if not is_due(run, now):
            return True
        with self._engine.begin() as conn:
            jobs.start_run(conn, JOB, period, self.holder, self._clock())
        log.info("hand-over run started", extra={"period": period, "holder": self.holder})
        try:
            handed_over = self._work(period)
        except LeaseLost:
            raise
        except Exception as error:
            with self._engine.begin() as conn:
                jobs.finish_run(conn, JOB, period, self._clock(), repr(error))
            log.exception("hand-over run failed", extra={"period": period})
            return True
        with self._engine.begin() as conn:
            jobs.finish_run(conn, JOB, period, self._clock())
        log.info("hand-over run done", extra={"period": period, "accounts": handed_over})
        return True

    def _work(self, period: str) -> int:
        """Batches, each recording its hand-overs and counting them in one transaction; the lease kept between."""
        total = 0
        while True:
            with self._engine.begin() as conn:
                recorded = hand_over_due(conn, self._clock(), self._batch)
                jobs.add_items(conn, JOB, period, recorded, self._clock())
            total += recorded
            if recorded < self._batch:
                return total
            self._keep_lease()

    def _renew(self) -> bool:
        now_us = int(self._clock().timestamp() * US_PER_SECOND)
        until_us = now_us + int(self._lease.total_seconds() * US_PER_SECOND)
        with self._engine.begin() as conn:
            return jobs.take_lease(conn, self.holder, now_us, until_us)

    def _keep_lease(self) -> None:
        if self._loop.stopping or not self._renew():
            raise LeaseLost


DEFAULT_RUNS = 20
MAX_RUNS = 200


def list_job_runs(engine: Engine, job: str, limit: int, now: datetime) -> tuple[list[Row[Any]], str, int]:
    """ListJobRuns: the job's runs, most recent day first, and the leader (the lease holder while it has not expired:
    "" and 0 otherwise)."""
    if job not in ("", JOB):
        raise InvalidArgument("job", f"must be empty or {JOB}")
    if not 0 <= limit <= MAX_RUNS:
        raise InvalidArgument("limit", f"must be between 0 (default {DEFAULT_RUNS}) and {MAX_RUNS}")
    with engine.connect() as conn:
        runs = jobs.latest_runs(conn, JOB, limit or DEFAULT_RUNS)
        holder, until_us = jobs.lease_holder(conn)
    leading = bool(holder) and until_us > int(now.timestamp() * US_PER_SECOND)
    return runs, holder if leading else "", until_us if leading else 0
