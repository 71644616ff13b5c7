"""Runs an operator asks for (StartJobRun): queued, picked up by the leader's next tick, idempotent per job and
period, and refused for periods that cannot be run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger_svc.domain.jobs import Job, RunState, Schedule
from ledger_svc.domain.time import add_months
from ledger_svc.service import reads, scheduler, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.tables import system_balances
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import EXPIRY, MovableClock, account_number, assert_conserved, earn
from tests.ledger.service.test_scheduler import LEASE, TODAY, at

A = account_number(1)


def state(ledger: LedgerContext, job: Job, period: str) -> tuple[RunState, int, int, int]:
    (run,) = scheduler.list_job_runs(ledger, job.value, 0, period)[0]
    return run.state, run.items, run.points, run.attempts


def test_an_expiry_run_asked_for_a_past_day_takes_only_what_expired_before_that_day(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    two_years_before = add_months(TODAY, -24)
    clock.now = at(two_years_before, hours=12)
    old, exact = earn("old", A, 1, earned_at=at(two_years_before - timedelta(days=2))), earn("exact", A, 10)
    transfers.post_transfers(ledger, [old, exact])
    # 00:01: the day's own sweep is not due before 00:05, so only the asked-for run can expire anything.
    clock.now = at(TODAY, minutes=1)
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    asked = scheduler.start_job_run(ledger, "expiry", yesterday)
    assert (asked.state, asked.attempts) == (RunState.QUEUED, 0)
    leader = scheduler.Scheduler(ledger, Schedule(), LEASE, holder="a", jobs=frozenset({Job.EXPIRY}))
    assert leader.tick()
    assert state(ledger, Job.EXPIRY, yesterday) == (RunState.DONE, 1, 1, 1)
    # Reads count the lot that expired at today's start as gone; only the run's own lot reached system:expiry.
    assert reads.get_balance(ledger, EXPIRY).total_points == 1
    again = scheduler.start_job_run(ledger, "expiry", yesterday)
    assert (again.state, again.items, again.attempts) == (RunState.DONE, 1, 1), "a done run is not run twice"
    assert leader.tick() and state(ledger, Job.EXPIRY, yesterday) == (RunState.DONE, 1, 1, 1)
    assert_conserved(ledger)


def test_a_close_asked_for_an_earlier_month_runs_and_a_failed_one_is_queued_again(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    clock.now = at(date(2026, 3, 10))
    transfers.post_transfers(ledger, [earn("e1", A, 70)])
    clock.now = at(date(2026, 5, 10))
    with ledger.engine.begin() as conn:  # a balance no journal entry explains: conservation fails
        conn.execute(system_balances.insert().values(account="system:adjustment", shard=7, balance_points=5))
    scheduler.start_job_run(ledger, "monthly_close", "2026-02")
    leader = scheduler.Scheduler(ledger, Schedule(), LEASE, holder="a", jobs=frozenset({Job.MONTHLY_CLOSE}))
    assert leader.tick()
    assert state(ledger, Job.MONTHLY_CLOSE, "2026-02")[0] == RunState.FAILED
    with ledger.engine.begin() as conn:
        conn.execute(system_balances.delete().where(system_balances.c.shard == 7))
    assert scheduler.start_job_run(ledger, "monthly_close", "2026-02").state == RunState.QUEUED
    assert leader.tick()
    assert state(ledger, Job.MONTHLY_CLOSE, "2026-02") == (RunState.DONE, 0, 70, 2)


def test_a_queued_run_waits_for_a_leader(ledger: LedgerContext, clock: MovableClock) -> None:
    clock.now = at(TODAY, hours=9)
    scheduler.start_job_run(ledger, "monthly_close", "")
    follower = scheduler.Scheduler(ledger, Schedule(), LEASE, holder="b")
    leader = scheduler.Scheduler(ledger, Schedule(), LEASE, holder="a")
    assert leader.tick()
    previous = (TODAY.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert state(ledger, Job.MONTHLY_CLOSE, previous)[0] == RunState.DONE
    scheduler.start_job_run(ledger, "expiry", "2028-03-01")
    assert not follower.tick()
    assert state(ledger, Job.EXPIRY, "2028-03-01")[0] == RunState.QUEUED


@pytest.mark.parametrize(
    ("job", "period", "field"),
    [
        ("hold_timeouts", "", "job"),
        ("statements", "", "job"),
        ("expiry", "2028-03-12", "period"),  # tomorrow
        ("expiry", "2028-3-1", "period"),
        ("expiry", "2028-03", "period"),
        ("monthly_close", "2028-03", "period"),  # the current month
        ("monthly_close", "2028-13", "period"),
        ("monthly_close", "2028-02-01", "period"),
    ],
)
def test_asking_for_a_run_names_a_bad_field(
    ledger: LedgerContext, clock: MovableClock, job: str, period: str, field: str
) -> None:
    clock.now = at(TODAY, hours=9)
    with pytest.raises(InvalidArgument) as caught:
        scheduler.start_job_run(ledger, job, period)
    assert caught.value.field == field
    assert scheduler.list_job_runs(ledger, "", 0)[0] == []


def test_listing_one_period_needs_its_job(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as caught:
        scheduler.list_job_runs(ledger, "", 0, "2028-03-01")
    assert caught.value.field == "period"
