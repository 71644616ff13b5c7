"""One real-world activity earns once nationwide (issue 16): two partners in one region, or in two regions, report
the same trip; the later report is accepted with 0 points, DUPLICATE_ACTIVITY, and ExplainScore names the first. A
gateway outage keeps the credit owed; it completes once the gateway is back, once. Real ingest, ledger and gateway
servers; the identity is the harness's fake (consent is not what is tested here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc.service.crediting import Crediting
from ingest_svc.service.recording import Recorder
from service_kit.server import RunningServer
from service_kit.status import error_details
from tests.gateway.claims_gateway import claims_gateway
from tests.ingest.ingest_harness import Harness, make_harness

FINGERPRINT_KEYS = "t1:" + "ab" * 32
# The harness's clock stands in March 2026; the gateway's is the system's: keep every day of the year.
GATEWAY_ENV = {"CARBON_GATEWAY_CLAIM_RETENTION_DAYS": "800"}
Urls = Callable[[str], str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Urls:
    """A fresh database per service and region, all of one dialect."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    fresh: Callable[[], str] = request.getfixturevalue("fresh_postgres_url")
    return lambda _name: fresh()


def _region(stack: ExitStack, urls: Urls, tmp_path: Path, region: str, gateway_address: str) -> Harness:
    data_dir = tmp_path / region
    data_dir.mkdir()
    return stack.enter_context(
        _harness(urls(f"ingest-{region}"), data_dir, region, gateway_address)  # type: ignore[arg-type]
    )


class _harness:
    """make_harness as a context manager, with claims at `gateway_address`."""

    def __init__(self, url: str, data_dir: Path, region: str, gateway_address: str) -> None:
        self._made = make_harness(
            url,
            {"CARBON_GATEWAY_ADDRESS": gateway_address},
            data_dir=data_dir,
            region=region,
            secrets={"activity_fingerprint_keys": FINGERPRINT_KEYS},
        )

    def __enter__(self) -> Harness:
        return next(self._made)

    def __exit__(self, *_exc: object) -> None:
        for _ in self._made:
            pass


def _resubmit_until_the_gateway_answers(harness: Harness, request: pb.SubmitEventsRequest) -> list[pb.EventResult]:
    """The partner's retry: ingest's channel reconnects to the restarted gateway within its backoff (at most 1 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return list(harness.stub.SubmitEvents(request, timeout=30).results)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _trip(harness: Harness, account: str, event_id: str, evidence: str = "bjcard:trip-X") -> pb.Event:
    event = harness.event(account, at=harness.clock.now - timedelta(minutes=30), event_id=event_id)
    event.evidence_ref = evidence
    return event


def _as(harness: Harness, partner: tuple[str, str, str]) -> Harness:
    harness.partner_id, harness.key_id, harness.secret = partner
    return harness


def _partner(harness: Harness, partner_id: str) -> tuple[str, str, str]:
    harness.register(partner_id)
    return harness.partner_id, harness.key_id, harness.secret


@pytest.fixture
def gateway(tmp_path: Path, urls: Urls) -> Iterator[RunningServer]:
    with claims_gateway(tmp_path, urls("gateway"), **GATEWAY_ENV) as running:
        yield running


def test_one_trip_reported_by_two_partners_in_one_region_earns_once(
    tmp_path: Path, urls: Urls, gateway: RunningServer
) -> None:
    with ExitStack() as stack:
        bj = _region(stack, urls, tmp_path, "110000", gateway.address)
        transit, payment = _partner(bj, "transit-app"), _partner(bj, "pay-app")
        rider = bj.open_account()
        first = _as(bj, transit).submit([_trip(bj, rider, "t-1")])
        second = _as(bj, payment).submit([_trip(bj, rider, "p-7"), _trip(bj, rider, "p-8", "bjcard:trip-Y")])
        explained = bj.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="pay-app", event_id="p-7"))
        balance = bj.ledger.balance(rider)
    assert (first[0].outcome, first[0].points, first[0].reason) == (pb.EVENT_OUTCOME_ACCEPTED, 10, "")
    assert (second[0].outcome, second[0].points, second[0].co2e_grams) == (pb.EVENT_OUTCOME_ACCEPTED, 0, 0)
    assert second[0].reason == "DUPLICATE_ACTIVITY" and "t-1" in second[0].message
    assert (second[1].points, second[1].reason) == (10, ""), "another trip of the same rider still earns"
    holder = explained.activity_holder
    assert (holder.region_code, holder.partner_id, holder.event_id) == ("110000", "transit-app", "t-1")
    assert explained.result.reason == "DUPLICATE_ACTIVITY"
    assert balance == 20


def test_one_trip_reported_in_two_regions_earns_once_and_the_second_names_the_first(
    tmp_path: Path, urls: Urls, gateway: RunningServer
) -> None:
    with ExitStack() as stack:
        bj = _region(stack, urls, tmp_path, "110000", gateway.address)
        zj = _region(stack, urls, tmp_path, "330000", gateway.address)
        _partner(bj, "transit-app")
        _partner(zj, "pay-app")
        in_bj, in_zj = bj.open_account(), zj.open_account()
        first = bj.submit([_trip(bj, in_bj, "t-1")])
        zj_trip = _trip(zj, in_zj, "p-7")
        zj_trip.region_code = "110000"  # the trip was in Beijing; the resident's account is at home in Zhejiang
        second = zj.submit([zj_trip])
        explained = zj.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="pay-app", event_id="p-7"))
        balances = bj.ledger.balance(in_bj), zj.ledger.balance(in_zj)
    assert first[0].points == 10
    assert (second[0].outcome, second[0].points) == (pb.EVENT_OUTCOME_ACCEPTED, 0)
    assert second[0].reason == "DUPLICATE_ACTIVITY"
    holder = explained.activity_holder
    assert (holder.region_code, holder.partner_id, holder.event_id) == ("110000", "transit-app", "t-1")
    assert balances == (10, 0)


def test_a_gateway_outage_keeps_the_credit_owed_until_it_returns_then_credits_once(tmp_path: Path, urls: Urls) -> None:
    gateway_url = urls("gateway")
    with ExitStack() as stack:
        gateway = claims_gateway(tmp_path / "gw1", gateway_url, **GATEWAY_ENV)
        (tmp_path / "gw1").mkdir()
        running = gateway.__enter__()
        port = running.port
        gateway.__exit__(None, None, None)  # the gateway is down from here
        bj = _region(stack, urls, tmp_path, "110000", running.address)
        _partner(bj, "transit-app")
        rider = bj.open_account()
        request = bj.request([_trip(bj, rider, "t-1")], batch_id="b1")
        with pytest.raises(grpc.RpcError) as caught:
            bj.stub.SubmitEvents(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(caught.value).reason == "GATEWAY_UNAVAILABLE"
        assert bj.ledger.balance(rider) == 0, "nothing credited without a claim"
        (tmp_path / "gw2").mkdir()
        with claims_gateway(tmp_path / "gw2", gateway_url, CARBON_PORT=str(port), **GATEWAY_ENV):
            again = _resubmit_until_the_gateway_answers(bj, request)
            once_more = list(bj.stub.SubmitEvents(request, timeout=30).results)
            balance = bj.ledger.balance(rider)
    assert [(r.outcome, r.first_outcome, r.points) for r in again] == [
        (pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_ACCEPTED, 10)
    ]
    assert [r.points for r in once_more] == [10]
    assert balance == 10, "credited once, when the gateway came back"


def _record_fails_once(monkeypatch: pytest.MonkeyPatch, release: bool) -> None:
    """The first record transaction fails after its claims ahead reached the gateway (ADR 0415). release=False: the
    process also dies before giving them back, as a crash would leave them."""
    real_record = Recorder.record
    failed: list[bool] = []

    def record(self: Recorder, *args: object, **kwargs: object) -> object:
        if not failed:
            failed.append(True)
            # Not UNAVAILABLE: the partner's channel would retry that at once, and the retry is what the tests make.
            raise RuntimeError("injected: the record transaction failed")
        return real_record(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Recorder, "record", record)
    if not release:
        monkeypatch.setattr(Crediting, "release_ahead", lambda self, ahead: ahead and ahead.answers())


def test_claims_ahead_of_a_failed_record_are_released_and_another_partner_earns(
    tmp_path: Path, urls: Urls, gateway: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_fails_once(monkeypatch, release=True)
    with ExitStack() as stack:
        bj = _region(stack, urls, tmp_path, "110000", gateway.address)
        transit, payment = _partner(bj, "transit-app"), _partner(bj, "pay-app")
        rider = bj.open_account()
        with pytest.raises(grpc.RpcError) as caught:
            _as(bj, transit).submit([_trip(bj, rider, "t-1")])
        other = _as(bj, payment).submit([_trip(bj, rider, "p-7")])
        retried = _as(bj, transit).submit([_trip(bj, rider, "t-1")])
        balance = bj.ledger.balance(rider)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert (other[0].points, other[0].reason) == (10, ""), "the failed attempt's claim was given back"
    assert (retried[0].points, retried[0].reason) == (0, "DUPLICATE_ACTIVITY") and "p-7" in retried[0].message
    assert balance == 10


def test_claims_ahead_left_by_a_crash_are_taken_over_by_the_retry_and_the_activity_earns_once(
    tmp_path: Path, urls: Urls, gateway: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim stays with the event that was never recorded; the partner's retry records it, takes the claim over
    (it was made under another attempt) and earns; the other partner's report, before and after, names it."""
    _record_fails_once(monkeypatch, release=False)
    with ExitStack() as stack:
        bj = _region(stack, urls, tmp_path, "110000", gateway.address)
        transit, payment = _partner(bj, "transit-app"), _partner(bj, "pay-app")
        rider = bj.open_account()
        with pytest.raises(grpc.RpcError):
            _as(bj, transit).submit([_trip(bj, rider, "t-1")])
        before = _as(bj, payment).submit([_trip(bj, rider, "p-7")])
        retried = _as(bj, transit).submit([_trip(bj, rider, "t-1")])
        after = _as(bj, payment).submit([_trip(bj, rider, "p-8")])
        balance = bj.ledger.balance(rider)
    assert (before[0].points, before[0].reason) == (0, "DUPLICATE_ACTIVITY") and "t-1" in before[0].message
    assert (retried[0].points, retried[0].reason) == (10, "")
    assert (after[0].points, after[0].reason) == (0, "DUPLICATE_ACTIVITY") and "t-1" in after[0].message
    assert balance == 10


def test_a_capped_event_gives_its_claim_ahead_back_so_the_activity_may_earn_elsewhere(
    tmp_path: Path, urls: Urls, gateway: RunningServer
) -> None:
    """As when claims came after recording: an event recorded without points holds no claim."""
    with ExitStack() as stack:
        bj = _region(stack, urls, tmp_path, "110000", gateway.address)
        zj = _region(stack, urls, tmp_path, "330000", gateway.address)
        _partner(bj, "transit-app")
        _partner(zj, "pay-app")
        in_bj, in_zj = bj.open_account(), zj.open_account()
        capped = bj.submit([_trip(bj, in_bj, f"t-{n}", f"bjcard:trip-{n}") for n in range(11)])
        zj_trip = _trip(zj, in_zj, "p-1", "bjcard:trip-10")
        zj_trip.region_code = "110000"
        elsewhere = zj.submit([zj_trip])
        balances = bj.ledger.balance(in_bj), zj.ledger.balance(in_zj)
    assert [r.points for r in capped] == [10] * 10 + [0]
    assert (elsewhere[0].points, elsewhere[0].reason) == (10, "")
    assert balances == (100, 10)
