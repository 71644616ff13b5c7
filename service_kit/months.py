"""Calendar months as reporting periods (China Standard Time): the check every figures method makes on the month it
is asked for, and the instants a month starts and ends."""

from __future__ import annotations

from datetime import date, datetime

from service_kit.clock import china_day, start_of_china_day
from service_kit.errors import InvalidArgument


def check_month(year: int, month: int, now: datetime) -> None:
    """A month of 2000-9999, not after the current one (figures of the future are not zero, they are unknown)."""
    if not 2000 <= year <= 9999:
        raise InvalidArgument("year", "must be 2000-9999")
    if not 1 <= month <= 12:
        raise InvalidArgument("month", "must be 1-12")
    today = china_day(now)
    if (year, month) > (today.year, today.month):
        raise InvalidArgument("month", "must not be after the current month")


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's first instant, China time, as UTC datetimes."""
    following = date(year + month // 12, month % 12 + 1, 1)
    return start_of_china_day(date(year, month, 1)), start_of_china_day(following)
