"""Shared values of the rewards domain tests: a plain reward to vary, a fixed instant, the reason of a refusal."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from rewards_svc.domain.catalog import Reward
from rewards_svc.domain.limits import NO_USAGE, Usage
from rewards_svc.domain.redemption import check_redeemable
from service_kit.errors import FailedPrecondition

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def reward(**changes: object) -> Reward:
    base = Reward(
        reward_id="museum",
        name_en="Museum",
        name_zh="博物馆",
        category="CULTURE_TOURISM",
        price_points=500,
        face_value_cents=0,
        provider="Museums",
        region_codes=(),
        stock=-1,
        limit_per_day=0,
        limit_per_month=0,
        limit_lifetime=0,
        available_from=None,
        available_until=None,
        voucher_lifetime_days=30,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def reason_of(item: Reward, region: str = "330000", quantity: int = 1, usage: Usage = NO_USAGE) -> str:
    with pytest.raises(FailedPrecondition) as refused:
        check_redeemable(item, region, quantity, usage, NOW)
    return refused.value.reason
