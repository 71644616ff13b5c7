"""Time for every service: instants are aware UTC datetimes; calendar days are days in China Standard Time.

The rules say "per day" (caps, expiry, vouchers, statements) in China's civil time. China has kept UTC+8 without
daylight saving since 1991, so a fixed offset serves and needs no time-zone database. Services take a Clock (a
function returning the current instant) so tests, and later a rehearsal clock, can move time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
# The offset itself, for hot paths that shift a UTC instant and take .date() instead of calling astimezone.
UTC_TO_CHINA = timedelta(hours=8)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def china_day(instant: datetime) -> date:
    """The calendar day in China Standard Time that an aware instant falls on."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: instants must be aware")
    return (instant.astimezone(UTC) + UTC_TO_CHINA).date()


def start_of_china_day(day: date) -> datetime:
    """The instant (aware, UTC) at which a China Standard Time calendar day begins."""
    return datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)
