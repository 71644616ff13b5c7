"""Habit profiles: what a resident's own accepted events say about their habits, folded in incrementally.

A profile keeps per behaviour the count, the last day and the days of the recent past, the days with any action, and
how many events fell in each hour of the day; days older than RETAINED_DAYS are dropped as new events arrive, so a
profile stays small however long a resident has been active. Days are China Standard Time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from service_kit.clock import CHINA_STANDARD_TIME

# Long enough for every rule's window (a lapse of up to 365 days is told by last_day, not by these days).
RETAINED_DAYS = 60
RECENT_DAYS = 28
WEEKEND = (5, 6)


@dataclass(frozen=True)
class ObservedEvent:
    behaviour: str
    occurred_at: datetime

    @property
    def day(self) -> date:
        return self.occurred_at.astimezone(CHINA_STANDARD_TIME).date()

    @property
    def hour(self) -> int:
        return self.occurred_at.astimezone(CHINA_STANDARD_TIME).hour


@dataclass(frozen=True)
class Habit:
    events: int
    last_day: date
    days: tuple[date, ...]  # distinct days it was done, the last RETAINED_DAYS days up to last_day


@dataclass(frozen=True)
class Profile:
    first_day: date  # the first day profiled: nothing is known of the days before it
    habits: dict[str, Habit] = field(default_factory=dict)
    active_days: tuple[date, ...] = ()
    hours: tuple[int, ...] = (0,) * 24

    def days_since(self, behaviour: str, today: date) -> int | None:
        habit = self.habits.get(behaviour)
        return None if habit is None else (today - habit.last_day).days

    def recent_weekdays(self, behaviour: str, today: date) -> int:
        """Distinct weekdays (Monday-Friday) it was done in the RECENT_DAYS days up to today."""
        habit = self.habits.get(behaviour)
        if habit is None:
            return 0
        return sum(1 for day in habit.days if _recent(day, today) and day.weekday() not in WEEKEND)

    def idle_days(self, today: date) -> tuple[int, int]:
        """(days without any action, days observed) among the RECENT_DAYS days up to today since profiling began."""
        start = max(self.first_day, today - timedelta(days=RECENT_DAYS - 1))
        observed = (today - start).days + 1
        if observed <= 0:
            return 0, 0
        active = sum(1 for day in self.active_days if start <= day <= today)
        return observed - active, observed

    def typical_hour(self) -> int:
        """The hour of day most events happened in; -1 when none did."""
        return -1 if not any(self.hours) else max(range(24), key=lambda hour: (self.hours[hour], -hour))


def _recent(day: date, today: date) -> bool:
    return today - timedelta(days=RECENT_DAYS - 1) <= day <= today


def fold(profile: Profile | None, events: Iterable[ObservedEvent]) -> Profile:
    """The profile with `events` taken in (the first ones start it); order does not matter."""
    events = list(events)
    if profile is None:
        profile = Profile(first_day=min(event.day for event in events))
    habits = dict(profile.habits)
    active = set(profile.active_days)
    hours = list(profile.hours)
    for event in events:
        day = event.day
        habit = habits.get(event.behaviour)
        if habit is None:
            habits[event.behaviour] = Habit(1, day, (day,))
        else:
            days = tuple(sorted(set(habit.days) | {day}))
            habits[event.behaviour] = Habit(habit.events + 1, max(habit.last_day, day), days)
        active.add(day)
        hours[event.hour] += 1
    latest = max(active) if active else profile.first_day
    horizon = latest - timedelta(days=RETAINED_DAYS)
    pruned = {name: replace(h, days=tuple(d for d in h.days if d > horizon)) for name, h in habits.items()}
    return Profile(
        first_day=min([profile.first_day, *(event.day for event in events)]),
        habits=pruned,
        active_days=tuple(sorted(day for day in active if day > horizon)),
        hours=tuple(hours),
    )


def to_json(profile: Profile) -> str:
    return json.dumps(
        {
            "first_day": profile.first_day.isoformat(),
            "habits": {
                name: [h.events, h.last_day.isoformat(), [d.isoformat() for d in h.days]]
                for name, h in sorted(profile.habits.items())
            },
            "active_days": [day.isoformat() for day in profile.active_days],
            "hours": list(profile.hours),
        },
        separators=(",", ":"),
    )


def from_json(text: str) -> Profile:
    raw = json.loads(text)
    habits = {
        name: Habit(int(events), date.fromisoformat(last), tuple(date.fromisoformat(d) for d in days))
        for name, (events, last, days) in raw["habits"].items()
    }
    return Profile(
        first_day=date.fromisoformat(raw["first_day"]),
        habits=habits,
        active_days=tuple(date.fromisoformat(day) for day in raw["active_days"]),
        hours=tuple(int(count) for count in raw["hours"]),
    )
