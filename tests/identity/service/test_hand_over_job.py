"""The 14th-birthday hand-over runs by itself (issue 17, ADR 0210): a daily job after 00:05 China time, one leader
among replicas by a lease, a run per day that is resumed and visible, on the rehearsal clock (ADR 0015)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import select

from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc import store
from identity_svc.server import SERVICE_NAME, IdentityServices, IdentityServiceServicer
from identity_svc.service.hand_over_job import JOB, HandOverScheduler
from service_kit import identities
from service_kit.clock import set_rehearsal_offset, system_clock
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.identity.identity_helpers import FakeClock
from tests.identity.service.test_guardians import open_child, open_guardian
from tests.service_identities import TRUST

# The child of test_guardians is born 2012-06-01: the 14th birthday begins 2026-05-31 16:00 UTC.
BIRTHDAY_0100_CST = datetime(2026, 5, 31, 17, 0, tzinfo=UTC)
BIRTHDAY_0002_CST = datetime(2026, 5, 31, 16, 2, tzinfo=UTC)


@pytest.fixture
def rehearse_at() -> Iterator[object]:
    """Shifts the process's system clock so that it reads `at` now (as CARBON_CLOCK_OFFSET does), undone after."""

    def shift(at: datetime) -> None:
        set_rehearsal_offset(at - datetime.now(UTC))

    yield shift
    set_rehearsal_offset(timedelta(0))


def passed_at(services: IdentityServices, account: str) -> datetime | None:
    accounts = store.tables.accounts
    with services.accounts.engine.connect() as conn:
        row = conn.execute(select(accounts.c.control_passed_at).where(accounts.c.account_number == account)).one()
    passed: datetime | None = row.control_passed_at
    return passed


def runs(services: IdentityServices) -> list[tuple[str, str, int]]:
    with services.accounts.engine.connect() as conn:
        return [(run.period, run.state, run.items) for run in store.jobs.latest_runs(conn, JOB, 10)]


def test_two_replicas_hand_over_a_birthday_today_once_on_the_rehearsal_clock(
    services: IdentityServices, clock: FakeClock, rehearse_at: object
) -> None:
    child = open_child(services, open_guardian(services))
    assert callable(rehearse_at)
    rehearse_at(BIRTHDAY_0100_CST)
    replicas = [HandOverScheduler(services.accounts.engine, system_clock, holder=name) for name in ("a", "b")]
    led: list[bool] = []
    threads = [threading.Thread(target=lambda r=replica: led.append(r.tick())) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(led) == [False, True]  # one leader; the other stood by
    assert passed_at(services, child) is not None
    assert runs(services) == [("2026-06-01", "DONE", 1)]
    for replica in replicas:  # later ticks find the day done: nothing is recorded again
        replica.tick()
    assert runs(services) == [("2026-06-01", "DONE", 1)]


def test_no_run_before_0005_and_a_run_left_running_is_resumed(
    services: IdentityServices, clock: FakeClock, rehearse_at: object
) -> None:
    child = open_child(services, open_guardian(services))
    assert callable(rehearse_at)
    rehearse_at(BIRTHDAY_0002_CST)
    replica = HandOverScheduler(services.accounts.engine, system_clock, holder="a")
    assert replica.tick() and runs(services) == [] and passed_at(services, child) is None
    rehearse_at(BIRTHDAY_0100_CST)
    with services.accounts.engine.begin() as conn:  # a leader that died right after starting the day's run
        store.jobs.start_run(conn, JOB, "2026-06-01", "dead", system_clock())
    assert replica.tick()
    assert runs(services) == [("2026-06-01", "DONE", 1)]
    assert passed_at(services, child) is not None


def test_operators_see_the_last_run_and_the_leader(services: IdentityServices, rehearse_at: object) -> None:
    child = open_child(services, open_guardian(services))
    assert callable(rehearse_at) and child
    rehearse_at(BIRTHDAY_0100_CST)
    assert HandOverScheduler(services.accounts.engine, system_clock, holder="replica-a").tick()
    registration = Registration(
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServiceServicer(services), SERVICE_NAME
    )
    running = start_server(TRUST.server(Settings(service="identity_svc", port=0, max_workers=2)), [registration])
    try:
        with TRUST.channel(running.address, identities.OPS_API) as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            listed = stub.ListJobRuns(idpb.ListJobRunsRequest(), timeout=10)
            with pytest.raises(grpc.RpcError) as bad:
                stub.ListJobRuns(idpb.ListJobRunsRequest(job="expiry"), timeout=10)
    finally:
        running.stop()
    [run] = listed.runs
    assert (run.job, run.period, run.state, run.items, run.attempts) == (JOB, "2026-06-01", "DONE", 1, 1)
    assert run.HasField("finished_at") and listed.leader == "replica-a"
    assert error_details(bad.value).metadata["field"] == "job"
