"""The owed-credits sweep (docs/adr/0413-claims-in-the-credit-outbox.md): a credit batch left owed by a gateway outage
completes when the gateway returns, on the sweep's timer alone (no resubmission, no restart), exactly once; two
replicas posting the same owed batch at the same moment credit it once and take a duplicate's points out of the
statistics once; a batch younger than the minimum age is left to its request; failed passes back off. Real ingest,
ledger and gateway servers; the identity is the harness's fake."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import server as ingest_server
from ingest_svc.domain.catalog import load_catalog
from ingest_svc.service.claims import activity_claims
from ingest_svc.service.crediting import Crediting, InFlight
from ingest_svc.service.owed_credits import OwedCredits, SweepTiming
from service_kit.db import make_engine
from service_kit.errors import Unavailable
from service_kit.server import RunningServer
from service_kit.settings import Secret, Settings
from tests.gateway.claims_gateway import claims_gateway
from tests.ingest.ingest_harness import Harness, make_harness
from tests.ingest.test_activity_claims import FINGERPRINT_KEYS, GATEWAY_ENV, _trip
from tests.service_identities import TRUST

Urls = Callable[[str], str]
QUICK_SWEEP = {
    "CARBON_INGEST_RESUME_ON_START": "1",
    "CARBON_INGEST_OWED_SWEEP_MS": "100",
    "CARBON_INGEST_OWED_SWEEP_MAX_BACKOFF_MS": "500",
    "CARBON_INGEST_OWED_MIN_AGE_MS": "0",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Urls:
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    fresh: Callable[[], str] = request.getfixturevalue("fresh_postgres_url")
    return lambda _name: fresh()


@contextmanager
def _gateway(tmp_path: Path, url: str, name: str, port: int = 0) -> Iterator[RunningServer]:
    (tmp_path / name).mkdir()
    with claims_gateway(tmp_path / name, url, CARBON_PORT=str(port), **GATEWAY_ENV) as running:
        yield running


@contextmanager
def _region(url: str, tmp_path: Path, gateway_address: str, extra: dict[str, str]) -> Iterator[Harness]:
    made = make_harness(
        url,
        {"CARBON_GATEWAY_ADDRESS": gateway_address, **extra},
        data_dir=tmp_path,
        secrets={"activity_fingerprint_keys": FINGERPRINT_KEYS},
    )
    try:
        yield next(made)
    finally:
        for _ in made:
            pass


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _replica(
    stack: ExitStack, harness: Harness, url: str, gateway_address: str, crash_point: Callable[[str], None]
) -> Crediting:
    """Another ingest replica's crediting over the same database, ledger and gateway, stopping at `crash_point`."""
    _ingest, identity, ledger = harness.servers
    settings = TRUST.server(
        Settings(
            service="ingest_svc",
            region_code=harness.region,
            extra={
                "CARBON_IDENTITY_ADDRESS": identity.address,
                "CARBON_LEDGER_ADDRESS": ledger.address,
                "CARBON_GATEWAY_ADDRESS": gateway_address,
                "CARBON_INGEST_RESUME_ON_START": "0",
            },
            secrets={"activity_fingerprint_keys": Secret(FINGERPRINT_KEYS)},
        )
    )
    wired = ingest_server.build(settings, stack.enter_context(_engine(url)), harness.clock)
    claims = activity_claims(settings, gateway_address, 10, load_catalog().fingerprints)
    return Crediting(wired.engine, wired.ledger, harness.clock, InFlight(), crash_point, claims)


def _pass_or_its_failure(sweep: OwedCredits) -> tuple[int, int] | str:
    try:
        return sweep.run_once()
    except Unavailable:
        return "UNAVAILABLE"


def _a_pass_that_answers(sweep: OwedCredits) -> tuple[int, int] | str:
    """The next pass that is not refused UNAVAILABLE, within five. The sweep runs periodically, so a pass that fails
    is the next one's to finish: right after a gateway restarts on the same port, the client's channel may still be
    waiting out its reconnect back-off, and on a loaded machine a pass may meet the tail of a race's claim."""
    answer = _pass_or_its_failure(sweep)
    for _ in range(4):
        if answer != "UNAVAILABLE":
            break
        time.sleep(0.2)
        answer = _pass_or_its_failure(sweep)
    return answer


def _owe_while_the_gateway_is_down(harness: Harness, events: list[pb.Event]) -> None:
    """The submission fails UNAVAILABLE; its events are recorded, their credit batch owed. (The channel retries the
    call once: with a sweep running, the sweep may hold the batch then, and the retry answers DUPLICATE.)"""
    try:
        results = harness.stub.SubmitEvents(harness.request(events, batch_id="owed"), timeout=30).results
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        return
    assert [result.outcome for result in results] == [pb.EVENT_OUTCOME_DUPLICATE] * len(events)


def _points_of_the_day(harness: Harness) -> int:
    day = common_pb2.Date(year=2026, month=3, day=1)
    rows = harness.stub.GetStatistics(pb.GetStatisticsRequest(region_code="110000", from_day=day, to_day=day)).rows
    return sum(row.points for row in rows)


def test_the_sweep_completes_an_owed_credit_once_the_gateway_returns_without_a_resubmission(
    tmp_path: Path, urls: Urls
) -> None:
    gateway_url = urls("gateway")
    with ExitStack() as stack:
        with _gateway(tmp_path, gateway_url, "gw1") as first:
            port, address = first.port, first.address
        bj = stack.enter_context(_region(urls("ingest"), tmp_path, address, QUICK_SWEEP))
        bj.register("transit-app")
        rider = bj.open_account()
        _owe_while_the_gateway_is_down(bj, [_trip(bj, rider, "t-1")])
        time.sleep(0.5)  # a few failed sweeps while the gateway is down
        assert bj.ledger.balance(rider) == 0, "nothing credited without a claim"
        with _gateway(tmp_path, gateway_url, "gw2", port):
            deadline = time.monotonic() + 30
            while bj.ledger.balance(rider) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # more sweeps after the credit: they find nothing owed
            explained = bj.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="transit-app", event_id="t-1"))
            balance, issued, ledger_calls = bj.ledger.balance(rider), bj.ledger.issued(), bj.ledger.calls
    assert (balance, issued) == (10, 10), "credited once by the sweep"
    assert ledger_calls == 1, "one ledger call: the sweeps after it found nothing owed"
    assert (explained.result.points, explained.result.reason) == (10, "")


def test_two_replicas_posting_one_owed_batch_at_once_credit_it_once(tmp_path: Path, urls: Urls) -> None:
    gateway_url, ingest_url = urls("gateway"), urls("ingest")
    both_claimed = threading.Barrier(2, timeout=30)

    def after_both_claimed(name: str) -> None:
        if name == "after_claim":
            # Each replica has read the batch as owed and claimed before either credits (unless the other's pass
            # failed before its claim: then this one goes on alone).
            with suppress(threading.BrokenBarrierError):
                both_claimed.wait()

    with ExitStack() as stack:
        gw1 = _gateway(tmp_path, gateway_url, "gw1")
        first = gw1.__enter__()
        bj = stack.enter_context(_region(ingest_url, tmp_path, first.address, {}))
        bj.register("transit-app")
        rider = bj.open_account()
        assert bj.submit([_trip(bj, rider, "t-1")])[0].points == 10, "the first report holds the trip"
        bj.register("pay-app")
        port = first.port
        gw1.__exit__(None, None, None)  # the gateway is down from here
        _owe_while_the_gateway_is_down(bj, [_trip(bj, rider, "p-7"), _trip(bj, rider, "p-8", "bjcard:trip-Y")])
        stack.enter_context(_gateway(tmp_path, gateway_url, "gw2", port))
        timing = SweepTiming(timedelta(seconds=1), timedelta(seconds=1), timedelta(0))
        replicas = [_replica(stack, bj, ingest_url, first.address, after_both_claimed) for _ in range(2)]
        sweeps = [OwedCredits(crediting, timing) for crediting in replicas]
        with ThreadPoolExecutor(2) as pool:
            posted = list(pool.map(_pass_or_its_failure, sweeps))
        # A pass the race made fail (a dependency answered a conflict as UNAVAILABLE) is the next pass's to finish:
        # depending on where the failure fell, that pass finds the batch posted or posts it again (the ledger credits
        # it once either way). The pass after it finds nothing owed.
        after = _a_pass_that_answers(sweeps[0])
        last = _a_pass_that_answers(sweeps[1])
        explained = bj.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="pay-app", event_id="p-7"))
        balance, issued, points = bj.ledger.balance(rider), bj.ledger.issued(), _points_of_the_day(bj)
    assert set(posted) <= {(1, 2), "UNAVAILABLE"}, posted
    if (1, 2) in posted:
        finished = {(0, 0), (1, 2)} if "UNAVAILABLE" in posted else {(0, 0)}
        assert after in finished, "posted, or the failed pass finished"
    else:
        # On a loaded machine both racing passes can fail (each a conflict or a busy database answered UNAVAILABLE,
        # seen once in CI beside benchmarks); the batch is then still owed, and the next pass posts it, once.
        assert after == (1, 2), "the pass after two failed ones posts the owed batch"
    assert last == (0, 0), "nothing owed after"
    assert (balance, issued) == (20, 20), "t-1 and p-8 once each; p-7's activity is t-1's"
    assert explained.result.reason == "DUPLICATE_ACTIVITY"
    assert points == 20, "p-7's points taken out of the day's statistics once"


def test_a_batch_younger_than_the_minimum_age_is_left_to_its_request(tmp_path: Path, urls: Urls) -> None:
    gateway_url, ingest_url = urls("gateway"), urls("ingest")
    with ExitStack() as stack:
        with _gateway(tmp_path, gateway_url, "gw1") as first:
            port, address = first.port, first.address
        bj = stack.enter_context(_region(ingest_url, tmp_path, address, {}))
        bj.register("transit-app")
        rider = bj.open_account()
        _owe_while_the_gateway_is_down(bj, [_trip(bj, rider, "t-1")])
        stack.enter_context(_gateway(tmp_path, gateway_url, "gw2", port))
        timing = SweepTiming(timedelta(seconds=1), timedelta(seconds=1), timedelta(seconds=30))
        sweep = OwedCredits(_replica(stack, bj, ingest_url, address, lambda _name: None), timing)
        young = sweep.run_once()
        bj.clock.advance(timedelta(seconds=30))
        of_age = _a_pass_that_answers(sweep)
        balance = bj.ledger.balance(rider)
    assert (young, of_age, balance) == ((0, 0), (1, 1), 10)


def test_failed_sweeps_wait_twice_as_long_each_time_up_to_the_ceiling_then_the_interval_again() -> None:
    timing = SweepTiming(timedelta(seconds=1), timedelta(seconds=5), timedelta(0), page=10)
    sweep = OwedCredits(None, timing)  # type: ignore[arg-type]  # waits only: it never sweeps
    failed = [sweep.next_wait_s(None) for _ in range(4)]
    assert 1 <= failed[0] <= 2
    assert 2 <= failed[1] <= 4 and 2.5 <= failed[2] <= 5 and 2.5 <= failed[3] <= 5
    assert (sweep.next_wait_s(3), sweep.next_wait_s(10)) == (1.0, 0.0), "the interval; at once after a full page"
