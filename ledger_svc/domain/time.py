"""Time rules: instants are UTC microseconds; days are calendar days in China Standard Time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

# China has kept UTC+8 without daylight saving since 1991; a fixed offset needs no tz database.
CST = timezone(timedelta(hours=8), "CST")
Clock = Callable[[], datetime]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
DEFAULT_VALIDITY_MONTHS = 24


def system_clock() -> datetime:
    return datetime.now(UTC)


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the ledger only takes aware instants")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(instant_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=instant_us)


def day_of(instant_us: int) -> date:
    """The CST calendar day an instant falls on."""
    return from_us(instant_us).astimezone(CST).date()


def start_of_day_us(day: date) -> int:
    """The instant a CST day begins."""
    return to_us(datetime(day.year, day.month, day.day, tzinfo=CST))


def add_months(day: date, months: int) -> date:
    """Calendar arithmetic that never lengthens validity: 29 Feb + 24 months is 28 Feb."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def lot_expiry_us(earned_on: date, validity_months: int) -> int:
    """Points earned on a day expire at the start of the same day `validity_months` later (CST)."""
    return start_of_day_us(add_months(earned_on, validity_months))
