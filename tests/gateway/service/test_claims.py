"""Activity claims at the gateway: the first claim holds, a later one from any partner or region is told the holder,
the holder's own retry holds again, and only a region's ingest may claim."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from gateway.domain.claims import Claim, ClaimColumns, attempt_query
from gateway.service.claims import ActivityClaims
from service_kit import identities
from service_kit.clock import china_day, system_clock
from service_kit.db import make_engine, migrate
from service_kit.server import RunningServer
from service_kit.status import error_details
from tests.gateway.claims_gateway import OPERATOR, claim_request, claims_gateway, stub_as

ZJ_INGEST = identities.regional("330000", "ingest")
BJ_INGEST = identities.regional("110000", "ingest")
TODAY = china_day(system_clock()).isoformat()
TRIP = b"t" * 32
BIKE = b"b" * 32


@pytest.fixture
def claims_server(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    with claims_gateway(tmp_path, database_url) as running:
        yield running


def test_a_later_claim_from_another_region_is_told_the_first_holder(claims_server: RunningServer) -> None:
    zj_channel, zj = stub_as(claims_server, ZJ_INGEST)
    bj_channel, bj = stub_as(claims_server, BJ_INGEST)
    with zj_channel, bj_channel:
        first = zj.ClaimActivities(claim_request((TRIP, TODAY, "transit-app", "e1")), timeout=10)
        second = bj.ClaimActivities(claim_request((TRIP, TODAY, "payment-app", "p9")), timeout=10)
        again = zj.ClaimActivities(claim_request((TRIP, TODAY, "transit-app", "e1")), timeout=10)
    assert list(first.held) == [True]
    assert list(second.held) == [False]
    holder = second.holders[0]
    assert (holder.index, holder.region_code, holder.partner_id, holder.event_id) == (0, "330000", "transit-app", "e1")
    assert list(again.held) == [True]  # the holder's retry (a crash between claim and credit) proceeds


def test_within_one_batch_the_first_of_two_events_of_one_activity_holds(claims_server: RunningServer) -> None:
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel:
        answer = zj.ClaimActivities(
            claim_request((TRIP, TODAY, "a", "e1"), (BIKE, TODAY, "a", "e2"), (TRIP, TODAY, "b", "e3")), timeout=10
        )
    assert list(answer.held) == [True, True, False]
    assert [(h.index, h.partner_id, h.event_id) for h in answer.holders] == [(2, "a", "e1")]


def test_a_batch_mixing_held_new_retried_and_repeated_claims_is_answered_by_position(
    claims_server: RunningServer,
) -> None:
    # Rows go into the table in key order, not batch order: the batch's first event of a key must still hold it.
    late, early = b"z" * 32, b"a" * 32
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel:
        zj.ClaimActivities(claim_request((TRIP, TODAY, "other", "o1"), (BIKE, TODAY, "a", "e0")), timeout=10)
        answer = zj.ClaimActivities(
            claim_request(
                (late, TODAY, "a", "e1"),
                (TRIP, TODAY, "a", "e2"),
                (BIKE, TODAY, "a", "e0"),
                (early, TODAY, "a", "e3"),
                (late, TODAY, "a", "e4"),
                (early, TODAY, "a", "e5"),
            ),
            timeout=10,
        )
    assert list(answer.held) == [True, False, True, True, False, False]
    assert [(h.index, h.partner_id, h.event_id) for h in answer.holders] == [
        (1, "other", "o1"),
        (4, "a", "e1"),
        (5, "a", "e3"),
    ]


def test_conflicts_are_counted_per_partner_pair_and_day_once_per_claimant(claims_server: RunningServer) -> None:
    zj_channel, zj = stub_as(claims_server, ZJ_INGEST)
    bj_channel, bj = stub_as(claims_server, BJ_INGEST)
    with zj_channel, bj_channel:
        zj.ClaimActivities(claim_request((TRIP, TODAY, "transit-app", "e1"), (BIKE, TODAY, "transit-app", "e2")))
        for _ in range(2):  # a retry is not a second conflict
            bj.ClaimActivities(claim_request((TRIP, TODAY, "pay", "p1"), (BIKE, TODAY, "pay", "p2")), timeout=10)
        counts = zj.ListClaimConflicts(
            gw.ListClaimConflictsRequest(from_day=TODAY, to_day=TODAY), metadata=OPERATOR, timeout=10
        ).counts
    pairs = [(c.day, c.holder_region, c.holder_partner, c.claimant_region, c.claimant_partner) for c in counts]
    assert pairs == [(TODAY, "330000", "transit-app", "110000", "pay")]
    assert [c.conflicts for c in counts] == [2]


@pytest.mark.parametrize("caller", [identities.regional("330000", "ledger"), identities.OPS_API, identities.GATEWAY])
def test_only_a_regions_ingest_may_claim(claims_server: RunningServer, caller: str) -> None:
    channel, stub = stub_as(claims_server, caller)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.ClaimActivities(claim_request((TRIP, TODAY, "a", "e1")), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(caught.value).reason == "CALLER_NOT_ALLOWED"


def test_an_external_caller_cannot_claim_even_as_operator(claims_server: RunningServer) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{claims_server.port}")
    with channel, pytest.raises(grpc.RpcError) as caught:
        gateway_service_pb2_grpc.GatewayServiceStub(channel).ClaimActivities(
            claim_request((TRIP, TODAY, "a", "e1")), metadata=OPERATOR, timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (claim_request((b"short", TODAY, "a", "e1")), "fingerprints"),
        (claim_request((TRIP, "2020-01-01", "a", "e1")), "occurred_days"),
        (claim_request((TRIP, "yesterday", "a", "e1")), "occurred_days"),
        (claim_request((TRIP, TODAY, "", "e1")), "partner_ids"),
        (gw.ClaimActivitiesRequest(fingerprints=[TRIP], key_ids=[]), "fingerprints"),
    ],
)
def test_bad_claims_are_invalid_argument_naming_the_column(
    claims_server: RunningServer, request_: gw.ClaimActivitiesRequest, field: str
) -> None:
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel, pytest.raises(grpc.RpcError) as caught:
        zj.ClaimActivities(request_, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value).metadata["field"] == field


def test_claims_of_days_past_retention_are_dropped_whole(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url)
    migrate("gateway", engine)
    now = system_clock()
    claims = ActivityClaims(engine, retention_days=3, clock=lambda: now)
    old_day, kept_day = china_day(now) - timedelta(days=4), china_day(now) - timedelta(days=3)
    claims.claim(
        "330000", ClaimColumns.of([Claim(old_day, TRIP, "k1", "a", "old"), Claim(kept_day, TRIP, "k1", "a", "kept")])
    )
    claims.drop_old_days()
    # The dropped day's activity is free again; the kept one is still held.
    answers = claims.claim(
        "110000", ClaimColumns.of([Claim(old_day, TRIP, "k1", "b", "x"), Claim(kept_day, TRIP, "k1", "b", "y")])
    )
    engine.dispose()
    assert answers[0] is None
    assert answers[1] is not None and answers[1].event_id == "kept"


def _ahead(attempt_id: str, recorded: bool, *claims: tuple[bytes, str, str, str]) -> gw.ClaimActivitiesRequest:
    request = claim_request(*claims)
    request.attempt_id, request.recorded = attempt_id, recorded
    return request


def _release(attempt_id: str, *fingerprints: bytes) -> gw.ReleaseActivityClaimsRequest:
    return gw.ReleaseActivityClaimsRequest(
        fingerprints=list(fingerprints), occurred_days=[TODAY] * len(fingerprints), attempt_id=attempt_id
    )


def test_a_claim_ahead_names_another_attempt_of_the_same_event_until_a_recorded_attempt_takes_it_over(
    claims_server: RunningServer,
) -> None:
    """ADR 0415: attempt a1 claimed ahead and then failed to record (a crash); attempt a2 of the same event is told
    so, records, claims again as recorded and takes the claim over: a1's late release removes nothing."""
    zj_channel, zj = stub_as(claims_server, ZJ_INGEST)
    bj_channel, bj = stub_as(claims_server, BJ_INGEST)
    with zj_channel, bj_channel:
        first = zj.ClaimActivities(_ahead("a1", False, (TRIP, TODAY, "transit-app", "e1")), timeout=10)
        second = zj.ClaimActivities(_ahead("a2", False, (TRIP, TODAY, "transit-app", "e1")), timeout=10)
        recorded = zj.ClaimActivities(_ahead("a2", True, (TRIP, TODAY, "transit-app", "e1")), timeout=10)
        late = zj.ReleaseActivityClaims(_release("a1", TRIP), timeout=10)
        other = bj.ClaimActivities(_ahead("b1", False, (TRIP, TODAY, "pay-app", "p9")), timeout=10)
    assert (list(first.held), list(first.other_attempt_indexes)) == ([True], [])
    assert (list(second.held), list(second.other_attempt_indexes)) == ([True], [0])
    assert (list(recorded.held), list(recorded.other_attempt_indexes)) == ([True], [])
    assert late.released == 0, "a claim taken over by the attempt that recorded it stays"
    assert list(other.held) == [False] and other.holders[0].event_id == "e1"


def test_a_release_frees_only_the_attempts_own_claims_of_its_region(claims_server: RunningServer) -> None:
    zj_channel, zj = stub_as(claims_server, ZJ_INGEST)
    bj_channel, bj = stub_as(claims_server, BJ_INGEST)
    with zj_channel, bj_channel:
        zj.ClaimActivities(_ahead("a1", False, (TRIP, TODAY, "a", "e1"), (BIKE, TODAY, "a", "e2")), timeout=10)
        by_other_region = bj.ReleaseActivityClaims(_release("a1", TRIP, BIKE), timeout=10)
        by_other_attempt = zj.ReleaseActivityClaims(_release("a9", TRIP, BIKE), timeout=10)
        own = zj.ReleaseActivityClaims(_release("a1", TRIP), timeout=10)
        again = zj.ReleaseActivityClaims(_release("a1", TRIP), timeout=10)
        after = bj.ClaimActivities(claim_request((TRIP, TODAY, "b", "p1"), (BIKE, TODAY, "b", "p2")), timeout=10)
    assert (by_other_region.released, by_other_attempt.released, own.released, again.released) == (0, 0, 1, 0)
    assert list(after.held) == [True, False], "the released activity is free again; the other is still held"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_ahead("x" * 65, False, (TRIP, TODAY, "a", "e1")), "attempt_id"),
        (_ahead("", True, (TRIP, TODAY, "a", "e1")), "attempt_id"),
    ],
)
def test_bad_attempts_are_invalid_argument(
    claims_server: RunningServer, request_: gw.ClaimActivitiesRequest, field: str
) -> None:
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel, pytest.raises(grpc.RpcError) as caught:
        zj.ClaimActivities(request_, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value).metadata["field"] == field


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_release("", TRIP), "attempt_id"),
        (
            gw.ReleaseActivityClaimsRequest(fingerprints=[b"short"], occurred_days=[TODAY], attempt_id="a1"),
            "fingerprints",
        ),
        (
            gw.ReleaseActivityClaimsRequest(fingerprints=[TRIP], occurred_days=["nope"], attempt_id="a1"),
            "occurred_days",
        ),
    ],
)
def test_bad_releases_are_invalid_argument_naming_the_field(
    claims_server: RunningServer, request_: gw.ReleaseActivityClaimsRequest, field: str
) -> None:
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel, pytest.raises(grpc.RpcError) as caught:
        zj.ReleaseActivityClaims(request_, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value).metadata["field"] == field


def test_only_a_regions_ingest_may_release(claims_server: RunningServer) -> None:
    channel = grpc.insecure_channel(claims_server.address)
    with channel, pytest.raises(grpc.RpcError) as caught:
        gateway_service_pb2_grpc.GatewayServiceStub(channel).ReleaseActivityClaims(
            _release("a1", TRIP), metadata=OPERATOR, timeout=10
        )
    assert caught.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _attempts(stub: gateway_service_pb2_grpc.GatewayServiceStub, **fields: object) -> gw.ListClaimAttemptsResponse:
    return stub.ListClaimAttempts(gw.ListClaimAttemptsRequest(**fields), timeout=10)  # type: ignore[arg-type]


def test_attempts_that_claimed_ahead_and_never_said_recorded_are_listed_per_region_once_old_enough(
    claims_server: RunningServer,
) -> None:
    """ADR 0416: the claimant's sweep sees its region's attempts not known to have recorded, oldest first, with the
    claims each made; one that claimed again as recorded, claims after recording and other regions' are not listed."""
    zj_channel, zj = stub_as(claims_server, ZJ_INGEST)
    bj_channel, bj = stub_as(claims_server, BJ_INGEST)
    with zj_channel, bj_channel:
        zj.ClaimActivities(_ahead("a1", False, (TRIP, TODAY, "a", "e1"), (BIKE, TODAY, "a", "e2")), timeout=10)
        zj.ClaimActivities(_ahead("a2", False, (b"c" * 32, TODAY, "a", "e3")), timeout=10)
        zj.ClaimActivities(_ahead("a2", True, (b"c" * 32, TODAY, "a", "e3")), timeout=10)
        zj.ClaimActivities(claim_request((b"d" * 32, TODAY, "a", "e4")), timeout=10)
        zj.ClaimActivities(_ahead("a3", False, (b"e" * 32, TODAY, "a", "e5")), timeout=10)
        bj.ClaimActivities(_ahead("b1", False, (b"f" * 32, TODAY, "b", "p1")), timeout=10)
        young = _attempts(zj, min_age_seconds=3600)
        time.sleep(1.1)
        first = _attempts(zj, min_age_seconds=1, page_size=1)
        second = _attempts(zj, min_age_seconds=1, page_size=1, page_token=first.next_page_token)
        third = _attempts(zj, min_age_seconds=1, page_size=1, page_token=second.next_page_token)
        resumed = _attempts(zj, min_age_seconds=1, page_token=second.resume_page_token)
        in_bj = _attempts(bj, min_age_seconds=1)
    assert (list(young.attempts), young.next_page_token, young.resume_page_token) == ([], "", "")
    assert [(a.attempt_id, list(a.fingerprints), list(a.occurred_days)) for a in first.attempts] == [
        ("a1", [TRIP, BIKE], [TODAY, TODAY])
    ]
    assert [a.attempt_id for a in second.attempts] == ["a3"] and second.next_page_token
    assert (list(third.attempts), third.next_page_token) == ([], "")
    assert third.resume_page_token == second.next_page_token, "an empty page resumes where it was asked to"
    assert (list(resumed.attempts), resumed.resume_page_token) == ([], second.resume_page_token)
    assert [a.attempt_id for a in in_bj.attempts] == ["b1"]
    assert first.attempts[0].claimed_at_us <= second.attempts[0].claimed_at_us


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"min_age_seconds": 0}, "min_age_seconds"),
        ({"min_age_seconds": 86_401}, "min_age_seconds"),
        ({"min_age_seconds": 60, "page_size": -1}, "page_size"),
        ({"min_age_seconds": 60, "page_token": "not-a-token"}, "page_token"),
    ],
)
def test_bad_attempt_listings_are_invalid_argument_naming_the_field(
    claims_server: RunningServer, fields: dict[str, object], field: str
) -> None:
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel, pytest.raises(grpc.RpcError) as caught:
        _attempts(zj, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value).metadata["field"] == field


def test_only_a_regions_ingest_may_list_attempts(claims_server: RunningServer) -> None:
    channel, ledger = stub_as(claims_server, identities.regional("330000", "ledger"))
    with channel, pytest.raises(grpc.RpcError) as caught:
        _attempts(ledger, min_age_seconds=60)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_attempts_are_forgotten_after_two_days(tmp_path: Path, database_url: str) -> None:
    """The sweep reads an attempt minutes after its claims; kept longer, a billion claims a day would keep two
    million attempt rows a day standing for the claims' 33 days (ADR 0416)."""
    engine = make_engine(database_url)
    migrate("gateway", engine)
    now = system_clock()
    at = [now - timedelta(days=2, minutes=1)]
    claims = ActivityClaims(engine, retention_days=3, clock=lambda: at[0])
    day = china_day(now)
    for attempt_id, minutes in (("old", 1), ("kept", -1)):
        at[0] = now - timedelta(days=2, minutes=minutes)
        claims.claim(
            "330000",
            ClaimColumns.of([Claim(day, (attempt_id.encode() * 32)[:32], "k1", "a", attempt_id)])._replace(
                attempt_id=attempt_id
            ),
        )
    at[0] = now
    claims.drop_old_days()
    listed = claims.attempts("330000", attempt_query(1, 0, ""))
    engine.dispose()
    assert [a.attempt_id for a in listed] == ["kept"]


def test_a_claim_ahead_meeting_a_held_activity_keeps_its_attempt_and_claims_the_rest(
    claims_server: RunningServer,
) -> None:
    """ADR 0418: a batch of new claims goes in as one statement, which fails whole when a key is held; the transaction
    after it still claims the new keys and keeps the attempt with every claim it made."""
    channel, zj = stub_as(claims_server, ZJ_INGEST)
    with channel:
        zj.ClaimActivities(claim_request((TRIP, TODAY, "other", "o1")), timeout=10)
        answer = zj.ClaimActivities(_ahead("a1", False, (BIKE, TODAY, "a", "e1"), (TRIP, TODAY, "a", "e2")), timeout=10)
        later = zj.ClaimActivities(claim_request((BIKE, TODAY, "b", "p1")), timeout=10)
        time.sleep(1.1)
        listed = _attempts(zj, min_age_seconds=1)
    assert list(answer.held) == [True, False]
    assert [(h.partner_id, h.event_id) for h in later.holders] == [("a", "e1")]
    assert [(a.attempt_id, list(a.fingerprints)) for a in listed.attempts] == [("a1", [BIKE, TRIP])]
