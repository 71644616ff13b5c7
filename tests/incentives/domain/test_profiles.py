"""Habit profiles folded in incrementally answer as one fold of everything, and keep only what their rules need."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from incentives_svc.domain.profiles import RETAINED_DAYS, ObservedEvent, fold, from_json, to_json

MONDAY_9_CST = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Beijing

events = st.lists(
    st.builds(
        ObservedEvent,
        st.sampled_from(["transit_trip", "bike_km", "clean_plate"]),
        st.integers(0, 90 * 24).map(lambda hours: MONDAY_9_CST + timedelta(hours=hours)),
    ),
    min_size=1,
    max_size=40,
)


@given(events, st.integers(1, 39))
def test_folding_in_pages_is_folding_everything_at_once(observed: list[ObservedEvent], cut: int) -> None:
    cut = min(cut, len(observed) - 1) or 1
    whole = fold(None, observed)
    if cut >= len(observed):
        return
    paged = fold(fold(None, observed[:cut]), observed[cut:])
    today = max(event.day for event in observed)
    for behaviour in ("transit_trip", "bike_km", "clean_plate"):
        assert paged.days_since(behaviour, today) == whole.days_since(behaviour, today)
        assert paged.recent_weekdays(behaviour, today) == whole.recent_weekdays(behaviour, today)
    assert paged.idle_days(today) == whole.idle_days(today)
    assert paged.typical_hour() == whole.typical_hour()


def test_weekdays_idle_days_and_the_typical_hour() -> None:
    week = [MONDAY_9_CST + timedelta(days=d) for d in range(7)]  # Monday to Sunday, 09:00
    profile = fold(None, [ObservedEvent("transit_trip", at) for at in week])
    sunday = week[-1].date() + timedelta(days=0)
    assert profile.recent_weekdays("transit_trip", sunday) == 5
    assert profile.days_since("transit_trip", date(2026, 3, 18)) == 10
    assert profile.days_since("bike_km", sunday) is None
    assert profile.typical_hour() == 9
    assert profile.idle_days(date(2026, 3, 10)) == (2, 9)  # 9 days observed since the first, 2 without action


def test_old_days_are_dropped_but_counts_and_last_days_stay() -> None:
    first = fold(None, [ObservedEvent("transit_trip", MONDAY_9_CST)])
    later = fold(first, [ObservedEvent("bike_km", MONDAY_9_CST + timedelta(days=RETAINED_DAYS + 5))])
    transit = later.habits["transit_trip"]
    assert transit.days == () and transit.events == 1 and transit.last_day == MONDAY_9_CST.date()
    assert later.active_days == (later.habits["bike_km"].last_day,)


def test_a_profile_reads_back_as_written() -> None:
    profile = fold(None, [ObservedEvent("transit_trip", MONDAY_9_CST), ObservedEvent("bike_km", MONDAY_9_CST)])
    assert from_json(to_json(profile)) == profile
