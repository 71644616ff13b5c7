"""The sweep of claims left by attempts that never recorded (issue 16, docs/adr/0416-orphan-claims-sweep.md): a claim
made ahead of recording by an attempt that then died before its commit, for an event whose partner never retries,
held the activity and refused another partner's report while nothing earned. The sweep releases it; a committed
attempt's claims and a young attempt's are never touched; a gateway down during a pass changes nothing and the next
pass finishes. Real ingest, ledger and gateway servers, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine, select

from ingest_svc.clients import GatewayClient
from ingest_svc.service.orphan_claims import OrphanClaims, OrphanTiming, Swept
from ingest_svc.service.recording import Recorder
from ingest_svc.store import claim_sweep
from ingest_svc.store.tables import credit_batches
from service_kit.clock import system_clock
from service_kit.db import make_engine
from service_kit.errors import Unavailable
from service_kit.server import RunningServer
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.gateway.claims_gateway import claims_gateway
from tests.ingest.ingest_harness import Harness
from tests.ingest.test_activity_claims import (
    GATEWAY_ENV,
    Urls,
    _as,
    _harness,
    _partner,
    _record_fails_once,
    _trip,
    gateway,
    urls,
)
from tests.service_identities import TRUST

__all__ = ["gateway", "urls"]  # the fixtures, shared with test_activity_claims

REGION = "110000"


@contextmanager
def _beijing(urls: Urls, tmp_path: Path, gateway_address: str) -> Iterator[tuple[Harness, Engine]]:
    """Beijing's ingest claiming at the gateway, and an engine on its database for the sweep."""
    url = urls(f"ingest-{REGION}")
    data_dir = tmp_path / REGION
    data_dir.mkdir()
    engine = make_engine(url)
    try:
        with _harness(url, data_dir, REGION, gateway_address) as harness:
            yield harness, engine
    finally:
        engine.dispose()


def _sweep(engine: Engine, gateway_address: str, min_age: timedelta) -> OrphanClaims:
    settings = TRUST.server(Settings(service="ingest_svc", region_code=REGION))
    return OrphanClaims(
        engine, GatewayClient(gateway_address, 10, settings), system_clock, OrphanTiming(timedelta(0), min_age)
    )


def _old_enough() -> None:
    time.sleep(1.2)  # the sweep's age below is the gateway's minimum, 1 s


def _states(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(credit_batches.c.state)).scalars())


def _crashed_before_commit(harness: Harness) -> tuple[tuple[str, str, str], tuple[str, str, str], str]:
    """transit-app's batch claims t-1 ahead and dies before its commit (the record fails and the release is lost, as
    a crash leaves it); transit-app never retries. Returns the partners and the rider."""
    transit, payment = _partner(harness, "transit-app"), _partner(harness, "pay-app")
    rider = harness.open_account()
    with pytest.raises(grpc.RpcError) as caught:
        _as(harness, transit).submit([_trip(harness, rider, "t-1")])
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    return transit, payment, rider


def test_a_claim_left_by_an_attempt_that_never_recorded_is_released_and_another_partners_report_earns_once(
    tmp_path: Path, urls: Urls, gateway: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_fails_once(monkeypatch, release=False)
    with _beijing(urls, tmp_path, gateway.address) as (bj, engine):
        _, payment, rider = _crashed_before_commit(bj)
        refused = _as(bj, payment).submit([_trip(bj, rider, "p-7")])
        _old_enough()
        swept = _sweep(engine, gateway.address, timedelta(seconds=1)).run_once()
        again = _sweep(engine, gateway.address, timedelta(seconds=1)).run_once()
        earned = _as(bj, payment).submit([_trip(bj, rider, "p-8")])
        repeated = _as(bj, payment).submit([_trip(bj, rider, "p-9")])
        balance = bj.ledger.balance(rider)
        states = _states(engine)
    assert (refused[0].points, refused[0].reason) == (0, "DUPLICATE_ACTIVITY") and "t-1" in refused[0].message
    # p-7's attempt recorded (a credit batch, then refused at the claim): listed, kept. t-1's never did: released.
    assert swept == Swept(attempts=2, abandoned=1, released=1)
    assert again == Swept(0, 0, 0), "a later pass starts after what the last one read"
    assert (earned[0].points, earned[0].reason) == (10, "")
    assert (repeated[0].points, repeated[0].reason) == (0, "DUPLICATE_ACTIVITY") and "p-8" in repeated[0].message
    assert balance == 10, "the activity earned once, by the report after the sweep"
    assert states.count("ABANDONED") == 1


def test_a_committed_attempts_claims_are_never_released(tmp_path: Path, urls: Urls, gateway: RunningServer) -> None:
    with _beijing(urls, tmp_path, gateway.address) as (bj, engine):
        transit, payment = _partner(bj, "transit-app"), _partner(bj, "pay-app")
        rider = bj.open_account()
        first = _as(bj, transit).submit([_trip(bj, rider, "t-1"), _trip(bj, rider, "t-2", "bjcard:trip-Y")])
        _old_enough()
        swept = _sweep(engine, gateway.address, timedelta(seconds=1)).run_once()
        other = _as(bj, payment).submit([_trip(bj, rider, "p-7"), _trip(bj, rider, "p-8", "bjcard:trip-Y")])
        balance = bj.ledger.balance(rider)
        states = _states(engine)
    assert [r.points for r in first] == [10, 10]
    assert swept == Swept(attempts=1, abandoned=0, released=0)
    assert [(r.points, r.reason) for r in other] == [(0, "DUPLICATE_ACTIVITY")] * 2
    assert balance == 20
    assert "ABANDONED" not in states, "the committed attempt's credit batch is as it was"


def test_an_attempt_younger_than_the_age_is_left_alone(
    tmp_path: Path, urls: Urls, gateway: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_fails_once(monkeypatch, release=False)
    with _beijing(urls, tmp_path, gateway.address) as (bj, engine):
        _, payment, rider = _crashed_before_commit(bj)
        _old_enough()
        swept = _sweep(engine, gateway.address, timedelta(hours=1)).run_once()
        refused = _as(bj, payment).submit([_trip(bj, rider, "p-7")])
        with engine.connect() as conn:
            position = claim_sweep.position(conn)
        states = _states(engine)
    assert swept == Swept(0, 0, 0)
    assert (refused[0].points, refused[0].reason) == (0, "DUPLICATE_ACTIVITY") and "t-1" in refused[0].message
    assert position == "", "nothing read: the young attempt is listed once it is old enough"
    assert "ABANDONED" not in states


def test_a_gateway_down_during_the_sweep_changes_nothing_and_the_next_pass_finishes(
    tmp_path: Path, urls: Urls, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_fails_once(monkeypatch, release=False)
    gateway_url = urls("gateway")
    (tmp_path / "gw1").mkdir()
    (tmp_path / "gw2").mkdir()
    first_gateway = claims_gateway(tmp_path / "gw1", gateway_url, **GATEWAY_ENV)
    running = first_gateway.__enter__()
    up = True
    try:
        with _beijing(urls, tmp_path, running.address) as (bj, engine):
            _, payment, rider = _crashed_before_commit(bj)
            _old_enough()
            first_gateway.__exit__(None, None, None)  # the gateway is down from here
            up = False
            sweep = _sweep(engine, running.address, timedelta(seconds=1))
            with pytest.raises(Unavailable):
                sweep.run_once()
            down_states = _states(engine)
            with engine.connect() as conn:
                down_position = claim_sweep.position(conn)
            with claims_gateway(tmp_path / "gw2", gateway_url, CARBON_PORT=str(running.port), **GATEWAY_ENV):
                swept = _sweep_when_reachable(sweep)
                earned = _as(bj, payment).submit([_trip(bj, rider, "p-8")])
                balance = bj.ledger.balance(rider)
    finally:
        if up:
            first_gateway.__exit__(None, None, None)
    assert ("ABANDONED" in down_states, down_position) == (False, ""), "a failed pass changed nothing"
    assert (swept.abandoned, swept.released) == (1, 1)
    assert (earned[0].points, earned[0].reason) == (10, "")
    assert balance == 10


def _sweep_when_reachable(sweep: OrphanClaims) -> Swept:
    """The next pass, once the client's channel has reconnected to the restarted gateway (within its backoff)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return sweep.run_once()
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_an_attempt_given_up_by_the_sweep_cannot_commit_afterwards_and_the_retry_earns_once(
    tmp_path: Path, urls: Urls, gateway: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record transaction that outlasts the sweep's age (here: the sweep runs between the claim ahead and the
    record): its claims are released, so it must not commit, or its credit and another partner's would both earn."""
    real_record = Recorder.record
    swept: list[Swept] = []

    with _beijing(urls, tmp_path, gateway.address) as (bj, engine):
        sweep = _sweep(engine, gateway.address, timedelta(seconds=1))

        def slow_record(self: Recorder, *args: object, **kwargs: object) -> object:
            if not swept:
                _old_enough()
                swept.append(sweep.run_once())
            return real_record(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Recorder, "record", slow_record)
        transit, payment = _partner(bj, "transit-app"), _partner(bj, "pay-app")
        rider = bj.open_account()
        request = _as(bj, transit).request([_trip(bj, rider, "t-1")], batch_id="b1")
        try:
            results = list(bj.stub.SubmitEvents(request, timeout=30).results)
        except grpc.RpcError as error:  # the partner's retry of an UNAVAILABLE answer, if its channel did not
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert error_details(error).reason == "ATTEMPT_ABANDONED"
            results = list(bj.stub.SubmitEvents(request, timeout=30).results)
        other = _as(bj, payment).submit([_trip(bj, rider, "p-7")])
        balance = bj.ledger.balance(rider)
        states = _states(engine)
    assert swept == [Swept(attempts=1, abandoned=1, released=1)]
    assert [(r.points, r.reason) for r in results] == [(10, "")]
    assert (other[0].points, other[0].reason) == (0, "DUPLICATE_ACTIVITY")
    assert balance == 10, "earned once: the given-up attempt committed nothing"
    assert states.count("ABANDONED") == 1
