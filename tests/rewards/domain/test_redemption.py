"""Which redemptions are refused and in what order: retired, region, window, limits, stock."""

from __future__ import annotations

from datetime import timedelta

from rewards_svc.domain.limits import NO_USAGE
from rewards_svc.domain.redemption import check_redeemable
from tests.rewards.sample_rewards import NOW, reason_of, reward


def test_a_reward_is_refused_outside_its_regions() -> None:
    assert reason_of(reward(region_codes=("110000",)), region="310000") == "NOT_AVAILABLE_IN_REGION"
    check_redeemable(reward(region_codes=("110000",)), "110000", 1, NO_USAGE, NOW)


def test_a_retired_reward_is_refused_first() -> None:
    assert reason_of(reward(retired=True, stock=0)) == "REWARD_RETIRED"


def test_the_validity_window_opens_and_closes() -> None:
    assert reason_of(reward(available_from=NOW + timedelta(seconds=1))) == "NOT_YET_AVAILABLE"
    assert reason_of(reward(available_until=NOW)) == "NO_LONGER_AVAILABLE"


def test_stock_below_the_quantity_is_out_of_stock() -> None:
    assert reason_of(reward(stock=1), quantity=2) == "OUT_OF_STOCK"
    check_redeemable(reward(stock=2), "330000", 2, NO_USAGE, NOW)
