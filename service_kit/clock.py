"""Time for every service: instants are aware UTC datetimes; calendar days are days in China Standard Time.

The rules say "per day" (caps, expiry, vouchers, statements) in China's civil time. China has kept UTC+8 without
daylight saving since 1991, so a fixed offset serves and needs no time-zone database. Services take a Clock (a
function returning the current instant) so tests can move time.

The rehearsal clock: staff rehearse expiry, reminders and month end by shifting the whole system's time by one
offset (CARBON_CLOCK_OFFSET, refused in production; docs/adr/0015-rehearsal-clock.md). Each process sets it once at
start (set_rehearsal_offset) and system_clock adds it, so every service's default clock moves together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
# The offset itself, for hot paths that shift a UTC instant and take .date() instead of calling astimezone.
UTC_TO_CHINA = timedelta(hours=8)

Clock = Callable[[], datetime]


# Set once at process start, before any service reads the clock; zero unless a rehearsal is configured.
_rehearsal_offset = timedelta(0)
# "+730d", "-2h30m", "90s", "1d12h": a sign, then whole days, hours, minutes and seconds in that order.
_OFFSET = re.compile(r"^([+-]?)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def system_clock() -> datetime:
    """The current instant, aware, in UTC, shifted by the rehearsal offset when one is set."""
    return datetime.now(UTC) + _rehearsal_offset


def set_rehearsal_offset(offset: timedelta) -> None:
    """Shifts system_clock for the rest of the process (timedelta(0) undoes it)."""
    global _rehearsal_offset
    _rehearsal_offset = offset


def rehearsal_offset() -> timedelta:
    return _rehearsal_offset


def parse_offset(text: str) -> timedelta:
    """An offset written as e.g. "+730d", "-2h30m" or "1d12h" (empty: none); ValueError naming the form otherwise."""
    match = _OFFSET.match(text.strip())
    if not match or not any(match.groups()[1:]):
        if not text.strip():
            return timedelta(0)
        raise ValueError(f"expected a signed offset such as +730d, -2h30m or 1d12h, got {text!r}")
    sign, days, hours, minutes, seconds = match.groups()
    offset = timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0))
    return -offset if sign == "-" else offset


def format_offset(offset: timedelta) -> str:
    """The form parse_offset reads, in whole seconds: "+63072000s"."""
    seconds = int(offset.total_seconds())
    return f"{'-' if seconds < 0 else '+'}{abs(seconds)}s"


def china_day(instant: datetime) -> date:
    """The calendar day in China Standard Time that an aware instant falls on."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: instants must be aware")
    return (instant.astimezone(UTC) + UTC_TO_CHINA).date()


def start_of_china_day(day: date) -> datetime:
    """The instant (aware, UTC) at which a China Standard Time calendar day begins."""
    return datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)
