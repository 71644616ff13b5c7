"""The scheduler in-process on both databases with a movable clock: when each job runs, what it records, the lease
between replicas, and the catch-up after missed nights. (Killing a real leader mid-sweep: tests/ledger/
test_scheduler_processes.py.)"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.jobs import Job, RunState, Schedule, close_period, expiry_period
from ledger_svc.domain.time import add_months, start_of_day_us, to_us
from ledger_svc.service import holds, reads, scheduler, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.tables import system_balances
from service_kit.clock import start_of_china_day
from service_kit.errors import InvalidArgument
from tests.ledger.ledger_support import EXPIRY, MovableClock, account_number, assert_conserved, earn

A = account_number(1)
B = account_number(2)
LEASE = timedelta(seconds=30)
# The rehearsal day: lots are posted while the clock stands in March 2026, then it moves two years on.
TODAY = date(2028, 3, 11)


def at(day: date, hours: int = 0, minutes: int = 0) -> datetime:
    return start_of_china_day(day) + timedelta(hours=hours, minutes=minutes)


def replica(ledger: LedgerContext, name: str) -> scheduler.Scheduler:
    return scheduler.Scheduler(ledger, Schedule(), LEASE, holder=name)


def runs(ledger: LedgerContext, job: Job) -> dict[str, tuple[RunState, int, int]]:
    found, _, _ = scheduler.list_job_runs(ledger, job.value, 0)
    return {run.period: (run.state, run.items, run.points) for run in found}


def test_the_sweep_after_midnight_takes_lots_two_years_old_and_leaves_a_younger_one(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    two_years_before = add_months(TODAY, -24)
    earned = {"older": two_years_before - timedelta(days=1), "exact": two_years_before}
    earned["younger"] = two_years_before + timedelta(days=1)
    clock.now = at(two_years_before + timedelta(days=1), hours=12)
    points = {"older": 1, "exact": 10, "younger": 100}
    transfers.post_transfers(ledger, [earn(n, A, points[n], earned_at=at(d, hours=9)) for n, d in earned.items()])
    leader = replica(ledger, "a")
    clock.now = at(TODAY, minutes=4)
    assert leader.tick() and runs(ledger, Job.EXPIRY) == {}, "not before 00:05 China time"
    clock.now = at(TODAY, minutes=6)
    assert leader.tick()
    # The lot two years and a day old is gone, and the one earned two years ago today (it expired at 00:00); the
    # lot a day younger than two years is not.
    assert runs(ledger, Job.EXPIRY) == {TODAY.isoformat(): (RunState.DONE, 2, 11)}
    assert reads.get_balance(ledger, A).available_points == 100
    assert leader.tick() and runs(ledger, Job.EXPIRY)[TODAY.isoformat()] == (RunState.DONE, 2, 11), "once a day"
    # Every replica down for two nights: the first tick back sweeps what expired meanwhile, under today's run.
    clock.now = at(TODAY + timedelta(days=2), hours=9)
    assert leader.tick()
    later = (TODAY + timedelta(days=2)).isoformat()
    assert runs(ledger, Job.EXPIRY)[later] == (RunState.DONE, 1, 100)
    assert reads.get_balance(ledger, EXPIRY).total_points == 111 and reads.get_balance(ledger, A).total_points == 0
    assert_conserved(ledger)


def test_one_replica_leads_until_its_lease_lapses_or_it_stops(ledger: LedgerContext, clock: MovableClock) -> None:
    first, second = replica(ledger, "a"), replica(ledger, "b")
    assert first.tick() and not second.tick()
    clock.advance(seconds=29)
    assert first.tick() and not second.tick(), "renewed by its tick"
    clock.advance(seconds=31)
    assert second.tick() and not first.tick(), "taken over after the lease lapsed"
    second.stop()
    assert first.tick(), "a stopping replica frees the lease at once"
    _, holder, until_us = scheduler.list_job_runs(ledger, "", 0)
    assert holder == "a" and until_us == to_us(clock.now + LEASE)


def test_timed_out_holds_are_released_by_the_minute_and_counted_per_day(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 100), earn("e2", B, 100)])
    holds.hold(ledger, HoldRequest("h1", A, 30, timeout_us=1_000_000))
    leader = replica(ledger, "a")
    assert leader.tick()
    today = (clock.now + timedelta(hours=8)).date().isoformat()
    assert runs(ledger, Job.HOLD_TIMEOUTS)[today] == (RunState.DONE, 0, 0), "not timed out yet"
    clock.advance(seconds=30)
    holds.hold(ledger, HoldRequest("h2", B, 20, timeout_us=1_000_000))
    clock.advance(seconds=2)
    assert leader.tick() and runs(ledger, Job.HOLD_TIMEOUTS)[today][1] == 0, "a minute between sweeps"
    clock.advance(seconds=30)
    assert leader.tick()
    assert runs(ledger, Job.HOLD_TIMEOUTS)[today] == (RunState.DONE, 2, 0)
    assert reads.get_balance(ledger, A).held_points == reads.get_balance(ledger, B).held_points == 0
    assert_conserved(ledger)


def test_the_month_is_closed_once_after_it_ends_with_the_points_outstanding(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 70)])
    leader = replica(ledger, "a")
    clock.now = at(date(2026, 4, 1), minutes=31)
    assert leader.tick() and leader.tick()
    found, _, _ = scheduler.list_job_runs(ledger, Job.MONTHLY_CLOSE.value, 0)
    assert [(run.period, run.state, run.points, run.attempts) for run in found if run.period == "2026-03"] == [
        ("2026-03", RunState.DONE, 70, 1)
    ]


def test_a_failed_run_records_its_error_and_is_tried_again_later(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 70)])
    with ledger.engine.begin() as conn:  # a balance no journal entry explains: conservation fails
        conn.execute(system_balances.insert().values(account="system:adjustment", shard=7, balance_points=5))
    leader = replica(ledger, "a")
    clock.now = at(date(2026, 4, 1), minutes=31)
    assert leader.tick()
    (failed,) = [run for run in scheduler.list_job_runs(ledger, "monthly_close", 0)[0] if run.period == "2026-03"]
    assert failed.state == RunState.FAILED and "conservation" in failed.error and failed.attempts == 1
    with ledger.engine.begin() as conn:
        conn.execute(system_balances.delete().where(system_balances.c.shard == 7))
    clock.advance(minutes=4)
    assert leader.tick() and runs(ledger, Job.MONTHLY_CLOSE)["2026-03"][0] == RunState.FAILED, "not retried at once"
    clock.advance(minutes=2)
    assert leader.tick()
    (done,) = [run for run in scheduler.list_job_runs(ledger, "monthly_close", 0)[0] if run.period == "2026-03"]
    assert (done.state, done.error, done.attempts, done.points) == (RunState.DONE, "", 2, 70)


def test_the_periods_follow_china_time() -> None:
    schedule = Schedule()
    assert expiry_period(to_us(at(TODAY, minutes=4)), schedule) is None
    assert expiry_period(to_us(at(TODAY, minutes=5)), schedule) == "2028-03-11"
    assert close_period(to_us(at(date(2028, 3, 1), minutes=29)), schedule) == "2028-01"
    assert close_period(to_us(at(date(2028, 3, 1), minutes=30)), schedule) == "2028-02"
    assert close_period(to_us(datetime(2028, 1, 1, 0, 0, tzinfo=UTC)), schedule) == "2027-12"
    assert start_of_day_us(TODAY) == to_us(at(TODAY))


def test_listing_runs_names_a_bad_field(ledger: LedgerContext) -> None:
    with pytest.raises(InvalidArgument) as caught:
        scheduler.list_job_runs(ledger, "statements", 0)
    assert caught.value.field == "job"
    with pytest.raises(InvalidArgument) as caught:
        scheduler.list_job_runs(ledger, "", 201)
    assert caught.value.field == "limit"
