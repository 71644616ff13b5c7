"""The ledger's scheduled jobs as plain rules: which run of which job is due at an instant, given the runs stored.

Every job run has a period, the key that makes it happen once: the expiry sweep and the hold-timeout sweep run per
China day, the monthly close per calendar month (the month just ended). A run that is not DONE is resumed, not
started again, so a replica that takes over from a dead leader continues the leader's run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from ledger_svc.domain.time import US_PER_SECOND, day_of, start_of_day_us


class Job(StrEnum):
    # Moves expired lots to system:expiry, shortly after 00:00 China time; missed nights are covered by the next run,
    # whose cutoff (the start of its day) takes every lot expired before it.
    EXPIRY = "expiry"
    # Releases holds past their timeout in the stored state, every few minutes (reads count them released already).
    HOLD_TIMEOUTS = "hold_timeouts"
    # Month end: the journal sealed and conservation checked for the month just ended, totals recorded.
    MONTHLY_CLOSE = "monthly_close"
    # The day's reminders (ADR 0113): points expiring in 30 and 7 days, and on the 1st the monthly digest, queued in
    # identity's outbox by notice key, in the morning China time.
    REMINDERS = "reminders"
    # Moves the recent lots of closed days into the per-account lots (ADR 0137), shortly after 00:00 China time; a
    # missed night's lots move with the next run's, whose day takes every closed day before it.
    MOVE_LOTS = "move_lots"


class RunState(StrEnum):
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    # Asked for by an operator (StartJobRun), waiting for the leader's next tick.
    QUEUED = "QUEUED"


@dataclass(frozen=True)
class JobRun:
    job: Job
    period: str  # "2026-12-03" (a China day) or "2026-11" (a month)
    state: RunState
    started_at_us: int
    updated_at_us: int
    finished_at_us: int  # 0 while running
    items: int  # lots expired, holds released, or transfers of the month closed
    points: int
    batches: int
    attempts: int  # how many times a leader started or resumed it
    holder: str  # the replica that last worked on it
    error: str = ""


@dataclass(frozen=True)
class Schedule:
    """When jobs run. The delay after midnight leaves the day's first seconds to late postings of the day before."""

    expiry_after: timedelta = timedelta(minutes=5)
    hold_sweep_every: timedelta = timedelta(minutes=1)
    close_after: timedelta = timedelta(minutes=30)
    reminders_after: timedelta = timedelta(hours=9)
    move_lots_after: timedelta = timedelta(minutes=10)
    # A failed run is tried again after this long (each try is one more attempt on the same run).
    retry_after: timedelta = timedelta(minutes=5)


def expiry_period(now_us: int, schedule: Schedule) -> str | None:
    """Today's expiry period once its start time has passed (00:05 China time by default), else None."""
    today = day_of(now_us)
    if now_us < start_of_day_us(today) + _us(schedule.expiry_after):
        return None
    return today.isoformat()


def move_lots_period(now_us: int, schedule: Schedule) -> str | None:
    """Today's lot move once its start time has passed (00:10 China time by default), else None."""
    today = day_of(now_us)
    if now_us < start_of_day_us(today) + _us(schedule.move_lots_after):
        return None
    return today.isoformat()


def reminders_period(now_us: int, schedule: Schedule) -> str | None:
    """Today's reminder period once its start time has passed (09:00 China time by default), else None."""
    today = day_of(now_us)
    if now_us < start_of_day_us(today) + _us(schedule.reminders_after):
        return None
    return today.isoformat()


def close_period(now_us: int, schedule: Schedule) -> str:
    """The month whose close is due: the month just ended, once the new month is `close_after` old."""
    today = day_of(now_us)
    first = today.replace(day=1)
    if now_us < start_of_day_us(first) + _us(schedule.close_after):
        first = (first - timedelta(days=1)).replace(day=1)
    previous = first - timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"


def month_bounds_us(period: str) -> tuple[int, int]:
    """The instants a month ("2026-11") starts and the next one starts, China time."""
    year, month = (int(part) for part in period.split("-"))
    start = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return start_of_day_us(start), start_of_day_us(following)


def is_due(run: JobRun | None, now_us: int, every: timedelta | None, schedule: Schedule) -> bool:
    """Whether a period's run should be worked on now: never started, left RUNNING by a dead leader, FAILED long
    enough ago to try again, or (for a repeating job) DONE long enough ago to run again in the same period."""
    if run is None or run.state in (RunState.RUNNING, RunState.QUEUED):
        return True
    if run.state == RunState.FAILED:
        return now_us >= run.updated_at_us + _us(schedule.retry_after)
    return every is not None and now_us >= run.finished_at_us + _us(every)


# The jobs an operator may ask for by period; hold_timeouts repeats within its day by itself.
REQUESTABLE = (Job.EXPIRY, Job.MONTHLY_CLOSE, Job.REMINDERS)


def requested_period(job: Job, period: str, now_us: int, schedule: Schedule) -> str:
    """The period an operator's request names, checked: an expiry day not after today (empty: today), a close month
    before the current one (empty: the month just ended). Raises ValueError naming what is wrong."""
    today = day_of(now_us)
    if job in (Job.EXPIRY, Job.REMINDERS):
        if not period:
            return today.isoformat()
        try:
            day = date.fromisoformat(period)
        except ValueError:
            raise ValueError(f"must be a day YYYY-MM-DD for {job.value}") from None
        if len(period) != 10 or day > today:
            raise ValueError("must be a day YYYY-MM-DD, not after today (China time)")
        return day.isoformat()
    if job == Job.MONTHLY_CLOSE:
        if not period:
            first = today.replace(day=1)
            previous = first - timedelta(days=1)
            return f"{previous.year:04d}-{previous.month:02d}"
        try:
            year, month = (int(part) for part in period.split("-"))
            date(year, month, 1)
        except ValueError:
            raise ValueError("must be a month YYYY-MM for monthly_close") from None
        if len(period) != 7 or (year, month) >= (today.year, today.month):
            raise ValueError("must be a month YYYY-MM before the current month (China time)")
        return period
    raise ValueError(f"runs of {job.value} cannot be asked for")


def _us(delta: timedelta) -> int:
    return int(delta.total_seconds() * US_PER_SECOND)
