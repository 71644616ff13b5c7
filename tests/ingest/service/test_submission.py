"""Submission end to end through the ingest server and the real ledger (fake identity, so tests can script consent
history), SQLite and PostgreSQL: the worked cases, one result per event, duplicates, caps, consent, regions, and the
dedupe fast path. Every harness checks the ledger's conservation when the test ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.accounts import new_account_number
from tests.ingest.ingest_harness import START, Harness

A, D, R = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED


def test_mr_li_two_trips_a_day_for_30_days_earns_600_points(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    total = 0
    for day in range(30):
        at = START + timedelta(days=day)
        harness.clock.now = at + timedelta(hours=1)
        results = harness.submit([harness.event(li, at=at), harness.event(li, at=at + timedelta(minutes=30))])
        assert [r.outcome for r in results] == [A, A]
        total += sum(r.points for r in results)
    assert total == 600
    assert harness.ledger.balance(li) == 600
    assert harness.ledger.calls == 30, "one ledger call per batch"


def test_ms_zhang_20_supervisor_days_earn_1000_points(shanghai_harness: Harness) -> None:
    harness = shanghai_harness  # she lives in Shanghai: the Shanghai platform's ingest credits its own ledger
    harness.register()
    zhang = harness.open_account()
    harness.clock.now = START + timedelta(days=6)

    def supervised(day: int) -> pb.Event:
        return harness.event(zhang, "sorting_supervisor_day", at=START + timedelta(days=day), region="310000")

    results = harness.submit([supervised(d) for d in range(6)])
    harness.clock.now = START + timedelta(days=13)
    results += harness.submit(
        [
            harness.event(zhang, "sorting_supervisor_day", at=START + timedelta(days=d), region="310000")
            for d in range(7, 14)
        ]
    )
    harness.clock.now = START + timedelta(days=20)
    results += harness.submit(
        [
            harness.event(zhang, "sorting_supervisor_day", at=START + timedelta(days=d), region="310000")
            for d in range(14, 21)
        ]
    )
    assert len(results) == 20 and all(r.outcome == A for r in results)
    assert sum(r.points for r in results) == 1000 == harness.ledger.balance(zhang)


def test_a_mixed_batch_gets_one_result_per_event_and_bad_ones_change_nothing(harness: Harness) -> None:
    harness.register()
    good = harness.open_account()
    no_consent = harness.open_account(consent=())
    events = [
        harness.event(good),
        harness.event(good, "bike_km", 300_000),
        harness.event(good, "flying_less"),
        harness.event(good, at=harness.clock.now + timedelta(hours=1)),
        harness.event(good, at=harness.clock.now - timedelta(days=8)),
        harness.event("1100001234567897"),
        harness.event(no_consent),
        harness.event(good, "ev_charging_kwh"),
        harness.event(good, quantity_milli=0),
        harness.event(good, "bike_km", 2500),
    ]
    events[5] = harness.event(new_account_number("110000"))  # well formed, never opened
    results = harness.submit(events)
    assert [(r.outcome, r.reason) for r in results] == [
        (A, ""),
        (R, "IMPLAUSIBLE"),
        (R, "UNKNOWN_BEHAVIOUR"),
        (R, "IN_FUTURE"),
        (R, "TOO_OLD"),
        (R, "UNKNOWN_ACCOUNT"),
        (R, "CONSENT_MISSING"),
        (R, "BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER"),
        (R, "INVALID_QUANTITY"),
        (A, ""),
    ]
    assert [r.points for r in results if r.outcome == A] == [10, 7]
    assert harness.ledger.balance(good) == 17
    assert harness.ledger.balance(no_consent) == 0


def test_identity_is_asked_once_per_batch_and_resolves_only_bindings(harness: Harness) -> None:
    harness.register()
    by_number, by_binding = harness.open_account(), harness.open_account()
    harness.fake_identity.bindings[("alipay", "u-7")] = by_binding
    binding = common_pb2.AccountRef(binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="u-7"))
    numbers_only = [harness.event(by_number) for _ in range(3)] + [harness.event(new_account_number("110000"))]
    calls = harness.fake_identity.calls
    assert [r.reason for r in harness.submit(numbers_only)] == ["", "", "", "UNKNOWN_ACCOUNT"]
    assert calls == {"resolve": 0, "consent": 1, "account": 0}, (
        "account numbers need no resolving: the consent check knows them"
    )
    with_binding = harness.event(by_number)
    with_binding.account.CopyFrom(binding)
    assert [r.outcome for r in harness.submit([harness.event(by_number), with_binding])] == [A, A]
    assert calls == {"resolve": 1, "consent": 2, "account": 0}
    assert harness.ledger.balance(by_binding) == 10


def test_a_replayed_batch_returns_duplicates_with_the_first_result_and_credits_once(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    events = [harness.event(li), harness.event(li)]
    first = harness.submit(events)
    again = harness.submit(events)
    assert [r.outcome for r in again] == [D, D]
    assert [r.first_outcome for r in again] == [A, A]
    assert [r.points for r in again] == [r.points for r in first]
    assert [r.ledger_transfer_id for r in again] == [r.ledger_transfer_id for r in first]
    assert harness.ledger.balance(li) == 20


def test_a_repeated_event_id_within_one_batch_counts_once(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    event = harness.event(li)
    results = harness.submit([event, event])
    assert [r.outcome for r in results] == [A, D]
    assert harness.ledger.balance(li) == 10


def test_caps_count_per_cst_day_across_batches(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    evening = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 CST
    harness.clock.now = evening + timedelta(hours=2)
    first = harness.submit([harness.event(li, "bike_km", 25_000, at=evening)])
    second = harness.submit(
        [
            harness.event(li, "bike_km", 10_000, at=evening + timedelta(minutes=20)),  # 23:50 CST, same day
            harness.event(li, "bike_km", 10_000, at=evening + timedelta(minutes=40)),  # 00:10 CST, next day
        ]
    )
    assert first[0].points == 75
    assert (second[0].points, second[0].reason) == (15, "DAILY_CAP_REACHED")
    assert (second[1].points, second[1].reason) == (30, "")
    third = harness.submit([harness.event(li, "bike_km", 1000, at=evening + timedelta(minutes=25))])
    assert (third[0].outcome, third[0].points, third[0].reason) == (A, 0, "DAILY_CAP_REACHED")


def test_consent_revoked_mid_month_stops_scoring_from_then(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    revoked_at = START + timedelta(days=14)
    harness.fake_identity.consents.append((li, 1, False, revoked_at))
    harness.clock.now = revoked_at + timedelta(days=2)
    results = harness.submit(
        [harness.event(li, at=revoked_at - timedelta(hours=1)), harness.event(li, at=revoked_at + timedelta(hours=1))]
    )
    assert [(r.outcome, r.reason) for r in results] == [(A, ""), (R, "CONSENT_REVOKED")]


def test_a_partner_may_not_report_a_behaviour_it_is_not_allowed(harness: Harness) -> None:
    harness.register(behaviours=("bike_km",))
    li = harness.open_account()
    results = harness.submit([harness.event(li, "transit_trip")])
    assert results[0].reason == "BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER"


def test_ids_with_backslashes_and_quotes_are_stored_exactly(harness: Harness) -> None:
    """Free text reaches PostgreSQL by COPY, whose text format gives backslashes a meaning: they must be escaped."""
    harness.register()
    li = harness.open_account()
    odd = [r"trip\N", r"c:\rides\7", 'it\'s "quoted"', "tab\\t-like"]
    events = [harness.event(li, event_id=event_id) for event_id in odd]
    events[1].evidence_ref = r"s3:\\bucket\key"
    assert [r.outcome for r in harness.submit(events)] == [A] * 4
    for event_id in odd:
        explained = harness.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="bus-co", event_id=event_id))
        assert explained.result.event_id == event_id and explained.result.points == 10
    assert [r.outcome for r in harness.submit(events)] == [pb.EVENT_OUTCOME_DUPLICATE] * 4
    assert harness.ledger.balance(li) == 40


def test_green_appliances_score_by_tier(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    results = harness.submit(
        [harness.event(li, "green_appliance", tier="tier_1"), harness.event(li, "green_appliance", tier="tier_4")]
    )
    assert [r.points for r in results] == [50, 200]


def test_an_account_of_another_region_is_rejected_not_credited(harness: Harness) -> None:
    harness.register()
    shanghai = harness.open_account("310000")  # this platform is Beijing's: only Shanghai's ledger can credit her
    results = harness.submit([harness.event(shanghai)])
    assert [(r.outcome, r.reason) for r in results] == [(R, "ACCOUNT_NOT_IN_REGION")]
    assert harness.ledger.calls == 0


@pytest.mark.redis
def test_redis_flushed_mid_run_creates_no_duplicate(
    redis_harness: Harness, redis_client: redis.Redis, redis_prefix: str
) -> None:
    harness = redis_harness
    harness.register()
    li = harness.open_account()
    events = [harness.event(li), harness.event(li)]
    harness.submit(events)
    assert list(redis_client.scan_iter(f"{redis_prefix}seen:*")), "accepted events are remembered in Redis"
    for key in redis_client.scan_iter(f"{redis_prefix}*"):
        redis_client.delete(key)
    again = harness.submit(events)
    assert [r.outcome for r in again] == [pb.EVENT_OUTCOME_DUPLICATE] * 2
    assert harness.ledger.balance(li) == 20


def _known_events_skip_identity(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    events = [harness.event(li)]
    harness.submit(events)
    calls = dict(harness.fake_identity.calls)
    assert harness.submit(events)[0].outcome == pb.EVENT_OUTCOME_DUPLICATE
    assert harness.fake_identity.calls == calls


@pytest.mark.redis
def test_the_redis_fast_path_skips_identity_for_known_events(redis_harness: Harness) -> None:
    _known_events_skip_identity(redis_harness)


def test_the_in_process_fast_path_skips_identity_for_known_events(harness: Harness) -> None:
    _known_events_skip_identity(harness)
