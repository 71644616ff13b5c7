"""Per-account limits: units of the day, month and lifetime, days and months in China Standard Time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rewards_svc.domain.limits import Usage, period_starts
from rewards_svc.domain.redemption import check_redeemable
from tests.rewards.sample_rewards import NOW, reason_of, reward


def test_limits_count_units_of_the_day_month_and_lifetime() -> None:
    assert reason_of(reward(limit_per_day=1), usage=Usage(1, 1, 1)) == "LIMIT_REACHED"
    assert reason_of(reward(limit_per_month=3), quantity=2, usage=Usage(0, 2, 2)) == "LIMIT_REACHED"
    assert reason_of(reward(limit_lifetime=1), usage=Usage(0, 0, 1)) == "LIMIT_REACHED"
    check_redeemable(reward(limit_per_day=2), "330000", 1, Usage(1, 5, 9), NOW)


def test_days_and_months_start_at_midnight_china_standard_time() -> None:
    just_after_midnight_cst = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)  # 1 April 00:30 in Beijing
    day, month = period_starts(just_after_midnight_cst)
    assert day == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    assert month == day


def test_period_starts_are_the_start_of_today_then_of_this_month() -> None:
    mid_month = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)  # 15 March 10:00 in Beijing
    assert period_starts(mid_month) == (
        datetime(2026, 3, 14, 16, 0, tzinfo=UTC),
        datetime(2026, 2, 28, 16, 0, tzinfo=UTC),
    )


def test_period_starts_agree_with_the_asia_shanghai_time_zone_since_1992() -> None:
    # China has kept UTC+8 without daylight saving since September 1991: the fixed offset gives the zone
    # database's days.
    shanghai = ZoneInfo("Asia/Shanghai")
    instant = datetime(1992, 1, 1, 0, 0, tzinfo=UTC)
    while instant.year < 2040:
        local = instant.astimezone(shanghai)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        assert period_starts(instant) == (day.astimezone(UTC), day.replace(day=1).astimezone(UTC))
        instant += timedelta(hours=77, minutes=13)
