"""Two real `python -m ledger_svc` replicas on one PostgreSQL database, two years ahead on a rehearsal clock: the
leader is killed (SIGKILL) in the middle of the expiry sweep, the other takes the lease over and finishes the run,
and every expired lot is swept exactly once. Likewise in the middle of the lot mover (ADR 0137): every recent lot
of a closed day ends in lots, once, with its id and points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from ledger_svc.domain.jobs import Job, JobRun, RunState
from ledger_svc.service import audit, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import jobs as job_store
from ledger_svc.store.tables import every_lot, lots, recent_lots
from ledger_svc.store.tables import transfers as journal
from service_kit import identities
from service_kit.clock import china_day, system_clock
from tests.ledger.ledger_support import REGION, account_number, assert_lots_placed, earn, migrated_engine
from tests.ports import free_port
from tests.service_identities import TRUST

ROOT = Path(__file__).resolve().parents[2]
# Batches of 10 lots (CARBON_LEDGER_EXPIRY_BATCH below): 200 commits, so the sweep is seen mid-way and killed there
# however fast the machine (the test polls every 10 ms; one batch takes longer), and fewer lots to seed.
EXPIRED_LOTS = 2_000
FRESH_LOTS = 50
# The replicas run 60 days ahead: lots earned 700 days ago (expiring in about 30) have expired for them.
OFFSET = "+60d"
EXPIRE_CODE = pb.TRANSFER_CODE_EXPIRE


class Replica:
    def __init__(self, database_url: str, log: Path, **extra: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "CARBON_PORT": str(self.port),
            "CARBON_DATABASE_URL": database_url,
            "CARBON_REGION": REGION,
            "CARBON_MIGRATE_ON_START": "0",
            "CARBON_CLOCK_OFFSET": OFFSET,
            "CARBON_LEDGER_SCHEDULER": "1",
            "CARBON_LEDGER_SCHEDULER_TICK_MS": "100",
            "CARBON_LEDGER_SCHEDULER_LEASE_MS": "1500",
            "CARBON_LEDGER_EXPIRY_BATCH": "10",
            "CARBON_LEDGER_EXPIRY_AFTER_MINUTES": "0",
            "CARBON_LOG_FORMAT": "text",
            **TRUST.env(identities.regional(REGION, "ledger")),
            **extra,
        }
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ledger_svc"], cwd=ROOT, env=env, stdout=out, stderr=out
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, deadline_s: float = 90) -> None:
        wait_until(lambda: b"READY" in self.log.read_bytes() or self.process.poll() is not None, deadline_s)
        assert self.process.poll() is None, self.log.read_text()


def wait_until(condition: Callable[[], object], deadline_s: float) -> None:
    """Polls until the condition holds (no fixed sleep stands in for synchronisation)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.process.terminate()
            replica.process.wait(20)


def seed(engine: Engine) -> int:
    """EXPIRED_LOTS lots earned 700 days ago (expired on the replicas' clock) and FRESH_LOTS earned 600 days ago (not
    yet), one per account; returns the points that must expire."""
    ledger = LedgerContext(engine, REGION, system_clock)
    now = datetime.now(UTC)
    credits = [
        earn(f"old-{n}", account_number(n), 1 + n % 7, earned_at=now - timedelta(days=700)) for n in range(EXPIRED_LOTS)
    ]
    credits += [
        earn(f"new-{n}", account_number(100_000 + n), 5, earned_at=now - timedelta(days=600)) for n in range(FRESH_LOTS)
    ]
    for start in range(0, len(credits), 4000):
        results = transfers.post_transfers(ledger, credits[start : start + 4000])
        assert all(result.status.name == "POSTED" for result in results)
    return sum(1 + n % 7 for n in range(EXPIRED_LOTS))


def kill_the_leader_mid_run(
    replicas: list[Replica], load_run: Callable[[], JobRun | None], part_done: Callable[[JobRun], bool]
) -> tuple[JobRun, Replica]:
    """Waits until the run is RUNNING with `part_done` true, SIGKILLs the replica holding it, waits until the other
    finishes it; returns the finished run and the survivor."""

    def running_part_done() -> bool:
        run = load_run()
        return run is not None and run.state == RunState.RUNNING and part_done(run)

    wait_until(running_part_done, 60)
    run = load_run()
    assert run is not None
    leader = next(replica for replica in replicas if f":{replica.pid}:" in run.holder)
    survivor = next(replica for replica in replicas if replica is not leader)
    os.kill(leader.pid, signal.SIGKILL)
    leader.process.wait(10)

    def finished() -> bool:
        latest = load_run()
        return latest is not None and latest.state == RunState.DONE

    wait_until(finished, 120)
    done = load_run()
    assert done is not None
    return done, survivor


def job_run(engine: Engine, job: Job) -> JobRun | None:
    """The job's run for the replicas' day (their clock runs 60 days ahead)."""
    day = china_day(datetime.now(UTC) + timedelta(days=60)).isoformat()
    with engine.connect() as conn:
        return job_store.load_run(conn, job, day)


def test_the_leader_killed_mid_sweep_is_replaced_and_nothing_expires_twice(
    postgres_url: str, tmp_path: Path, replicas: list[Replica]
) -> None:
    engine = migrated_engine(postgres_url)
    points = seed(engine)
    replicas.extend(Replica(postgres_url, tmp_path / f"ledger-{n}.log") for n in range(2))
    for replica in replicas:
        replica.wait_ready()

    done, survivor = kill_the_leader_mid_run(
        replicas, lambda: job_run(engine, Job.EXPIRY), lambda run: 0 < run.items < EXPIRED_LOTS
    )
    assert (done.items, done.points) == (EXPIRED_LOTS, points), "counts are exactly what committed"
    assert done.attempts >= 2 and f":{survivor.pid}:" in done.holder
    with engine.connect() as conn:
        expiries = conn.execute(
            select(
                func.count(), func.count(func.distinct(journal.c.reference)), func.sum(journal.c.amount_points)
            ).where(journal.c.code == EXPIRE_CODE)
        ).one()
        left = conn.execute(select(func.count()).where(every_lot.c.remaining_points > 0)).scalar_one()
    assert tuple(expiries) == (EXPIRED_LOTS, EXPIRED_LOTS, points), "one expiry transfer per lot, none twice"
    assert left == FRESH_LOTS
    checked = audit.check_conservation(LedgerContext(engine, REGION, system_clock))
    assert checked.balanced and checked.expired_points == points, checked.problems
    with TRUST.channel(f"127.0.0.1:{survivor.port}", identities.OPS_API) as channel:
        listed = pb_grpc.LedgerServiceStub(channel).ListJobRuns(pb.ListJobRunsRequest(job="expiry"), timeout=10)
    assert listed.runs[0].state == pb.JOB_RUN_STATE_DONE and listed.runs[0].items == EXPIRED_LOTS
    assert f":{survivor.pid}:" in listed.lease_holder
    engine.dispose()


# Accounts with a recent lot each, moved 10 accounts a transaction: 100 commits, seen mid-way however fast.
MOVED_ACCOUNTS = 1_000


def test_the_leader_killed_mid_move_is_replaced_and_every_lot_moves_once(
    postgres_url: str, tmp_path: Path, replicas: list[Replica]
) -> None:
    engine = migrated_engine(postgres_url)
    ledger = LedgerContext(engine, REGION, system_clock)
    earned_at = datetime.now(UTC) - timedelta(days=5)
    credits = [earn(f"e-{n}", account_number(n), 1 + n % 5, earned_at=earned_at) for n in range(MOVED_ACCOUNTS)]
    assert all(result.status.name == "POSTED" for result in transfers.post_transfers(ledger, credits))
    with engine.connect() as conn:
        before = sorted(conn.execute(select(recent_lots.c.lot_id, recent_lots.c.remaining_points)).all())
    assert len(before) == MOVED_ACCOUNTS
    mover = {"CARBON_LEDGER_MOVE_LOTS_BATCH": "10", "CARBON_LEDGER_MOVE_LOTS_AFTER_MINUTES": "0"}
    replicas.extend(Replica(postgres_url, tmp_path / f"ledger-{n}.log", **mover) for n in range(2))
    for replica in replicas:
        replica.wait_ready()

    done, _ = kill_the_leader_mid_run(
        replicas, lambda: job_run(engine, Job.MOVE_LOTS), lambda run: 0 < run.items < MOVED_ACCOUNTS
    )
    assert done.attempts >= 2
    assert done.items == MOVED_ACCOUNTS, "counts are exactly what committed"
    with engine.connect() as conn:
        after = sorted(conn.execute(select(lots.c.lot_id, lots.c.remaining_points)).all())
        left = conn.execute(select(func.count()).select_from(recent_lots)).scalar_one()
    assert (after, left) == (before, 0), "every lot moved once, with its id and points"
    assert_lots_placed(engine)
    checked = audit.check_conservation(ledger)
    assert checked.balanced, checked.problems
    engine.dispose()
