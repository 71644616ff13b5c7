"""Pure scoring rules: validation, plausibility, caps at CST day boundaries, rule versions, tiers, signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc import wire
from ingest_svc.catalog import load_catalog
from ingest_svc.domain import events as ev
from ingest_svc.domain.events import Acceptance, AccountRef, Event, PartnerScope, Rejection, ValidEvent, validate
from ingest_svc.domain.partners import PartnerKey, key_for_verification
from ingest_svc.domain.rules import RuleBook, RuleVersion
from ingest_svc.domain.scoring import score_events
from service_kit.accounts import new_account_number
from service_kit.partner_signing import SignedEvent, canonical_bytes, sign, signature_matches, signed_event

CATALOG = load_catalog()
BOOK = RuleBook(CATALOG.behaviours, CATALOG.rules)
ALL = PartnerScope(frozenset(BOOK.behaviours), frozenset({"110000", "310000", "330000", "440300", "440100"}))
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)  # 12:00 CST
ACCOUNT = new_account_number("110000")


def event(behaviour: str = "transit_trip", quantity_milli: int = 1000, **changes: object) -> Event:
    base = Event(
        event_id="e-1",
        account=AccountRef(account_number=ACCOUNT),
        behaviour=behaviour,
        quantity_milli=quantity_milli,
        occurred_at=NOW - timedelta(hours=1),
        region_code="110000",
    )
    return base._replace(**changes)  # type: ignore[arg-type]


def valid(e: Event, book: RuleBook = BOOK) -> ValidEvent:
    result = validate(e, ALL, book, NOW, Acceptance())
    assert isinstance(result, ValidEvent), result
    return result


def reason(e: Event, scope: PartnerScope = ALL) -> str:
    result = validate(e, scope, BOOK, NOW, Acceptance())
    return result.reason if isinstance(result, Rejection) else "OK"


def test_a_transit_trip_scores_ten_points_and_its_co2e() -> None:
    scores, _ = score_events([(valid(event()), ACCOUNT)], {})
    assert (scores[0].points, scores[0].co2e_grams, scores[0].reason) == (10, 515, "")


def test_fractional_kilometres_round_down() -> None:
    scores, _ = score_events([(valid(event("bike_km", 2500)), ACCOUNT)], {})
    assert scores[0].points == 7  # 2.5 km x 3 = 7.5 -> 7
    assert scores[0].co2e_grams == 261  # 104.7 g x 2.5 = 261.75 -> 261


def test_a_300_km_bike_ride_is_implausible() -> None:
    assert reason(event("bike_km", 300_000)) == ev.IMPLAUSIBLE


def test_an_event_beyond_the_clock_skew_is_in_the_future() -> None:
    assert reason(event(occurred_at=NOW + timedelta(minutes=6))) == ev.IN_FUTURE
    assert reason(event(occurred_at=NOW + timedelta(minutes=4))) == "OK"


def test_an_event_older_than_seven_days_is_too_old() -> None:
    assert reason(event(occurred_at=NOW - timedelta(days=7, seconds=1))) == ev.TOO_OLD


def test_each_bad_field_is_named() -> None:
    assert reason(event(event_id="")) == ev.INVALID_EVENT_ID
    assert reason(event(account=AccountRef())) == ev.INVALID_ACCOUNT_REF
    assert reason(event(account=AccountRef(account_number="1100001234567890"))) == ev.INVALID_ACCOUNT_REF
    assert reason(event(account=AccountRef(platform="alipay"))) == ev.INVALID_ACCOUNT_REF
    assert reason(event(region_code="11")) == ev.INVALID_REGION
    assert reason(event(behaviour="flying_less")) == ev.UNKNOWN_BEHAVIOUR
    assert reason(event(occurred_at=None)) == ev.INVALID_OCCURRED_AT
    assert reason(event(quantity_milli=0)) == ev.INVALID_QUANTITY
    assert reason(event(quantity_milli=-5)) == ev.INVALID_QUANTITY
    assert reason(event(tier="tier_1")) == ev.INVALID_TIER


def test_a_partner_may_report_only_its_behaviours_and_regions() -> None:
    transit_only = PartnerScope(frozenset({"transit_trip"}), frozenset({"110000"}))
    assert reason(event("bike_km", 1000), transit_only) == ev.BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER
    assert reason(event(region_code="310000"), transit_only) == ev.REGION_NOT_ALLOWED_FOR_PARTNER


def test_a_regional_extra_is_unknown_elsewhere() -> None:
    assert reason(event("water_governance_volunteer", region_code="110000")) == ev.UNKNOWN_BEHAVIOUR
    assert reason(event("water_governance_volunteer", region_code="330000")) == "OK"


def test_green_appliances_score_by_tier_in_whole_items() -> None:
    scores, _ = score_events([(valid(event("green_appliance", 1000, tier="tier_3")), ACCOUNT)], {})
    assert scores[0].points == 150
    assert reason(event("green_appliance", 1000, tier="tier_9")) == ev.INVALID_TIER
    assert reason(event("green_appliance", 1500, tier="tier_1")) == ev.INVALID_QUANTITY


def test_events_beyond_the_daily_cap_score_zero_with_the_reason() -> None:
    trips = [(valid(event(event_id=f"t{i}")), ACCOUNT) for i in range(12)]
    scores, totals = score_events(trips, {})
    assert [s.points for s in scores] == [10] * 10 + [0, 0]
    assert scores[-1].reason == ev.DAILY_CAP_REACHED
    assert list(totals.values()) == [10_000]


def test_a_partial_fill_counts_only_up_to_the_cap() -> None:
    ride = valid(event("bike_km", 10_000))
    day = ride.day
    scores, totals = score_events([(ride, ACCOUNT)], {(ACCOUNT, "bike_km", day): 25_000})
    assert scores[0].counted_milli == 5_000 and scores[0].points == 15
    assert scores[0].reason == ev.DAILY_CAP_REACHED
    assert totals[(ACCOUNT, "bike_km", day)] == 30_000


def test_the_cap_resets_at_midnight_china_standard_time() -> None:
    # 15:59:59 UTC is 23:59:59 CST; 16:00:00 UTC is the next CST day.
    late = datetime(2026, 3, 14, 15, 59, 59, tzinfo=UTC)
    trips = [valid(event(event_id=f"a{i}", occurred_at=late)) for i in range(10)]
    after = valid(event(event_id="b", occurred_at=late + timedelta(seconds=1)))
    just_before = valid(event(event_id="c", occurred_at=late))
    scores, _ = score_events([(t, ACCOUNT) for t in [*trips, after, just_before]], {})
    assert scores[10].points == 10, "a new CST day starts at 16:00 UTC"
    assert scores[11].points == 0 and scores[11].reason == ev.DAILY_CAP_REACHED


def test_an_event_is_scored_by_the_rule_in_force_when_it_happened() -> None:
    change = datetime(2026, 3, 10, tzinfo=UTC)
    doubled = RuleVersion(
        behaviour="transit_trip",
        region_code="",
        effective_from=change,
        points_per_unit=20,
        co2e_milligrams_per_unit=515_500,
        co2e_unit="g",
        co2e_source="test",
        daily_cap_milli=10_000,
        max_quantity_milli=1000,
    )
    book = RuleBook(CATALOG.behaviours, [*CATALOG.rules, doubled])
    before = valid(event(occurred_at=change - timedelta(seconds=1)), book)
    after = valid(event(occurred_at=change), book)
    scores, _ = score_events([(before, ACCOUNT), (after, ACCOUNT)], {})
    assert [s.points for s in scores] == [10, 20]


def _signed(event_id: str = "e1", quantity: int = 1000) -> SignedEvent:
    return SignedEvent(
        event_id, "account_number", (ACCOUNT,), "transit_trip", quantity, 1_700_000_000, 5, "110000", "", ""
    )


def test_a_signature_verifies_and_any_changed_field_breaks_it() -> None:
    canonical = canonical_bytes("bus-co", "b1", [_signed()])
    signature = sign(b"secret", canonical)
    assert signature_matches(b"secret", canonical, signature)
    assert not signature_matches(b"other", canonical, signature)
    assert not signature_matches(b"secret", canonical_bytes("bus-co", "b1", [_signed(quantity=2000)]), signature)
    assert not signature_matches(b"secret", canonical, "zz")


def test_the_encoding_is_length_prefixed_so_fields_cannot_slide() -> None:
    assert canonical_bytes("ab", "c", []) != canonical_bytes("a", "bc", [])


def test_an_old_key_is_valid_only_within_its_grace_period() -> None:
    old = PartnerKey("k1", b"a", NOW - timedelta(days=30), valid_until=NOW + timedelta(hours=1))
    new = PartnerKey("k2", b"b", NOW)
    assert key_for_verification([old, new], "k1", NOW) == old
    assert key_for_verification([old, new], "k1", NOW + timedelta(hours=2)) is None
    assert key_for_verification([old, new], "k2", NOW + timedelta(days=999)) == new
    assert key_for_verification([old, new], "k3", NOW) is None


def test_the_servers_one_pass_encoding_equals_the_documented_canonical_bytes() -> None:
    stamp = Timestamp(seconds=1_772_337_600, nanos=123_456_789)
    request = pb.SubmitEventsRequest(
        partner_id="bus-co",
        batch_id="b-1",
        events=[
            pb.Event(event_id="e1", account=common_pb2.AccountRef(account_number="11000012345678"), occurred_at=stamp),
            pb.Event(
                event_id="e2 电",
                account=common_pb2.AccountRef(binding=common_pb2.ChannelBinding(platform="ali", platform_user_id="u")),
                behaviour="green_appliance",
                quantity_milli=2000,
                region_code="110000",
                evidence_ref="receipt/1",
                tier="tier_1",
            ),
            pb.Event(event_id="e3", account=common_pb2.AccountRef(phone_number="13900000000"), occurred_at=stamp),
            pb.Event(event_id="e4"),
        ],
    )
    events, encoded = wire.batch_events(request)
    signed = [signed_event(message) for message in request.events]
    assert encoded == canonical_bytes("bus-co", "b-1", signed)
    assert events[0].occurred_at == stamp.ToDatetime(tzinfo=UTC)
    assert events[1].account.platform_user_id == "u" and events[1].occurred_at is None
    assert events[2].account.phone_number == "13900000000" and events[3].account.kind == ""
