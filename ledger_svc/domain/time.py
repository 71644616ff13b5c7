"""The ledger's time rules: instants are UTC microseconds; a lot expires at the start of a CST day months later.

China Standard Time, the clock type and the system clock are the kit's (service_kit.clock).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from service_kit.clock import china_day, start_of_china_day

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND
US_PER_DAY = 86_400 * US_PER_SECOND
DEFAULT_VALIDITY_MONTHS = 24


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the ledger only takes aware instants")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(instant_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=instant_us)


def day_of(instant_us: int) -> date:
    """The CST calendar day an instant falls on."""
    return china_day(from_us(instant_us))


def start_of_day_us(day: date) -> int:
    """The instant a CST day begins."""
    return to_us(start_of_china_day(day))


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


class LotDates(NamedTuple):
    """When a lot earned at some instant was earned (its CST day) and when it expires."""

    earned_on: date
    expires_at_us: int


@functools.lru_cache(maxsize=4096)
def lot_dates_of_hour(hour: int, validity_months: int) -> LotDates:
    """The dates of the lot points earned in a UTC hour (instant_us // US_PER_HOUR) fall into. CST days change on a
    UTC hour, so a batch's or a statement's instants share a few hours: each is computed once."""
    earned_on = day_of(hour * US_PER_HOUR)
    return LotDates(earned_on, lot_expiry_us(earned_on, validity_months))
