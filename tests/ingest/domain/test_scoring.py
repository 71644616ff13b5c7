"""Scoring: points and grams by the rule in force when the event happened, rounding down, tiers, and daily caps that
count per account, behaviour and CST day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ingest_svc.domain import events as ev
from ingest_svc.domain.events import ValidEvent
from ingest_svc.domain.rules import RuleBook, RuleVersion
from ingest_svc.domain.scoring import Score, score_events
from tests.ingest.domain.test_events import reason
from tests.ingest.examples import ACCOUNT, ACCOUNTS, CATALOG, event, valid, valid_events


def test_a_transit_trip_scores_ten_points_and_its_co2e() -> None:
    scores, _ = score_events([(valid(event()), ACCOUNT)], {})
    assert (scores[0].points, scores[0].co2e_grams, scores[0].reason) == (10, 515, "")


def test_fractional_kilometres_round_down() -> None:
    scores, _ = score_events([(valid(event("bike_km", 2500)), ACCOUNT)], {})
    assert scores[0].points == 7  # 2.5 km x 3 = 7.5 -> 7
    assert scores[0].co2e_grams == 261  # 104.7 g x 2.5 = 261.75 -> 261


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


def test_scores_are_the_rule_arithmetic_with_the_daily_cap() -> None:
    pairs = [(valid, ACCOUNTS[n % 3]) for n, valid in enumerate(valid_events())]
    earlier = {(ACCOUNTS[0], "transit_trip", pairs[0][0].day): 9000}

    scores, totals = score_events(pairs, earlier)

    # Plainly: each event counts what is left of its key's cap after everything before it.
    running: dict[tuple[str, str, date], int] = dict(earlier)
    expected = []
    for checked, account in pairs:
        rule, quantity = checked.rule, checked.event.quantity_milli
        key = (account, rule.behaviour, checked.day)
        before = running.get(key, 0)
        counted = min(quantity, max(0, rule.daily_cap_milli - before)) if rule.daily_cap_milli else quantity
        running[key] = before + counted
        capped = counted < quantity
        per_unit = rule.tier_points[checked.event.tier] if rule.tier_points else rule.points_per_unit
        expected.append(
            Score(
                event=checked,
                account_number=account,
                counted_milli=counted,
                points=per_unit * counted // 1000,
                co2e_grams=rule.co2e_milligrams_per_unit * counted // 1_000_000,
                reason=ev.DAILY_CAP_REACHED if capped else "",
                message=(
                    f"daily cap of {rule.daily_cap_milli} reached: counted {counted} of {quantity} "
                    f"({before} counted earlier on {checked.day.isoformat()} CST)"
                )
                if capped
                else "",
                counted_before_milli=before,
            )
        )
    assert scores == expected
    assert {type(s) for s in scores} == {Score} and {type(p[0]) for p in pairs} == {ValidEvent}
    assert any(s.reason for s in scores) and any(not s.reason for s in scores)
    assert totals == {key: n for key, n in running.items() if key in totals} and len(totals) == len(
        {(a, v.rule.behaviour, v.day) for v, a in pairs}
    )
