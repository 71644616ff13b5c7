"""Field validation of one event: each bad field named, the partner's scope, the acceptance window, plausibility,
regional extras, and the CST day an event counts on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ingest_svc.domain import events as ev
from ingest_svc.domain.events import Acceptance, AccountRef, Event, PartnerScope, Rejection, ValidEvent, validate
from service_kit.clock import CHINA_STANDARD_TIME, china_day
from tests.ingest.examples import ALL, BOOK, NOW, event


def reason(e: Event, scope: PartnerScope = ALL) -> str:
    result = validate(e, scope, BOOK, NOW, Acceptance())
    return result.reason if isinstance(result, Rejection) else "OK"


def test_a_300_km_bike_ride_is_implausible() -> None:
    assert reason(event("bike_km", 300_000)) == ev.IMPLAUSIBLE


def test_an_event_beyond_the_clock_skew_is_in_the_future() -> None:
    assert reason(event(occurred_at=NOW + timedelta(minutes=6))) == ev.IN_FUTURE
    assert reason(event(occurred_at=NOW + timedelta(minutes=4))) == "OK"


def test_an_event_older_than_seven_days_is_too_old() -> None:
    assert reason(event(occurred_at=NOW - timedelta(days=7, seconds=1))) == ev.TOO_OLD


def test_a_community_centre_counter_may_record_a_month_back_and_no_further() -> None:
    counter = PartnerScope(ALL.allowed_behaviours, ALL.allowed_regions, counter=True)
    supervised = event("sorting_supervisor_day", 1000)
    assert reason(supervised._replace(occurred_at=NOW - timedelta(days=20))) == ev.TOO_OLD
    assert reason(supervised._replace(occurred_at=NOW - timedelta(days=20)), counter) == "OK"
    assert reason(supervised._replace(occurred_at=NOW - timedelta(days=31, seconds=1)), counter) == ev.TOO_OLD


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


def test_an_event_counts_on_the_day_astimezone_gives_in_china_standard_time() -> None:
    cst = timezone(timedelta(hours=8))
    start = datetime(2026, 2, 28, 15, 0, tzinfo=UTC)
    moments = [start + timedelta(minutes=7 * n, microseconds=n) for n in range(600)]
    moments += [datetime(2026, 3, 1, 15, 59, 59, 999_999, tzinfo=UTC), datetime(2026, 3, 1, 16, 0, tzinfo=UTC)]
    moments += [m.astimezone(cst) for m in moments[:50]]  # aware but not UTC

    assert [china_day(m) for m in moments] == [m.astimezone(CHINA_STANDARD_TIME).date() for m in moments]


def test_a_valid_event_carries_its_behaviour_rule_and_day_in_field_order() -> None:
    trip = event()

    checked = validate(trip, ALL, BOOK, NOW, Acceptance())

    rule = BOOK.rule_for("transit_trip", "110000", NOW)
    assert rule is not None and trip.occurred_at is not None
    assert checked == ValidEvent(
        event=trip, behaviour=BOOK.behaviours["transit_trip"], rule=rule, day=china_day(trip.occurred_at)
    )
    assert type(checked) is ValidEvent
