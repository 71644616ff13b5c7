"""The ledger's time rules: lot expiry at the start of a CST day, CST days, month arithmetic."""

from __future__ import annotations

from datetime import date

from ledger_svc.domain.time import add_months, day_of, lot_expiry_us, start_of_day_us, to_us
from tests.ledger.ledger_support import START

NOW_US = to_us(START)


def test_points_expire_at_the_start_of_the_same_day_two_years_later_in_china_time() -> None:
    assert lot_expiry_us(date(2024, 3, 10), 24) == start_of_day_us(date(2026, 3, 10))
    assert day_of(start_of_day_us(date(2026, 3, 10))) == date(2026, 3, 10)


def test_the_earned_day_is_the_china_standard_time_day() -> None:
    hour_us = 3600 * 1_000_000
    # 2026-03-14 17:00 UTC is already 2026-03-15 01:00 in Beijing; 15:00 UTC is still 23:00 on the 14th.
    assert day_of(NOW_US - 9 * hour_us) == date(2026, 3, 15)
    assert day_of(NOW_US - 11 * hour_us) == date(2026, 3, 14)


def test_leap_day_validity_never_lengthens() -> None:
    assert add_months(date(2024, 2, 29), 24) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
