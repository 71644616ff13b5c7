"""Vouchers: one per unit or one for a divisible quantity, random codes read back leniently, expiry in Beijing time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rewards_svc.domain.vouchers import new_voucher_code, normalize_voucher_code, plan_vouchers, voucher_expiry
from service_kit.errors import InvalidArgument
from tests.rewards.sample_rewards import NOW, reward


def test_a_divisible_reward_gets_one_voucher_for_the_whole_quantity() -> None:
    assert [(p.units, p.price_points) for p in plan_vouchers(reward(divisible=True), 10, 1000)] == [(10, 10_000)]
    assert [(p.seq, p.price_points) for p in plan_vouchers(reward(), 2, 500)] == [(0, 500), (1, 500)]


def test_voucher_codes_are_random_and_read_back_whatever_the_spacing_or_case() -> None:
    codes = {new_voucher_code() for _ in range(1000)}
    assert len(codes) == 1000
    code = codes.pop()
    assert normalize_voucher_code(code.lower().replace("-", " ")) == code
    with pytest.raises(InvalidArgument) as bad:
        normalize_voucher_code("1234")
    assert bad.value.field == "code"


def test_a_voucher_runs_to_the_end_of_its_last_day_in_beijing_time() -> None:
    assert voucher_expiry(NOW, 30) == datetime(2026, 4, 9, 16, 0, tzinfo=UTC)


def test_voucher_expiry_agrees_with_the_asia_shanghai_time_zone_since_1992() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    instant = datetime(1992, 1, 1, 0, 0, tzinfo=UTC)
    while instant.year < 2040:
        for lifetime_days in (1, 30, 366):
            local = instant.astimezone(shanghai) + timedelta(days=lifetime_days)
            end = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            assert voucher_expiry(instant, lifetime_days) == end.astimezone(UTC)
        instant += timedelta(hours=77, minutes=13)
