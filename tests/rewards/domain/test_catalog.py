"""The catalog rules: what a valid reward is, how an update applies, what to recommend for a balance."""

from __future__ import annotations

import pytest

from rewards_svc.domain.catalog import apply_update, recommend, validate_reward
from service_kit.errors import FailedPrecondition, InvalidArgument
from tests.rewards.sample_rewards import NOW, reward


def test_an_update_changes_only_the_masked_fields_and_never_a_retired_reward() -> None:
    updated = apply_update(reward(), reward(price_points=600, provider="other"), ["price_points"])
    assert (updated.price_points, updated.provider) == (600, "Museums")
    with pytest.raises(InvalidArgument):
        apply_update(reward(), reward(), ["reward_id"])
    with pytest.raises(FailedPrecondition):
        apply_update(reward(retired=True), reward(price_points=1), ["price_points"])


def test_bad_rewards_name_the_field() -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"price_points": 0}, "reward.price_points"),
        ({"region_codes": ("11",)}, "reward.region_codes"),
        ({"stock": -2}, "reward.stock"),
        ({"category": "FOOD"}, "reward.category"),
    ]
    for changes, field in cases:
        with pytest.raises(InvalidArgument) as bad:
            validate_reward(reward(**changes))
        assert bad.value.field == field


def test_recommendations_list_what_is_affordable_then_the_nearest_out_of_reach() -> None:
    items = [
        reward(reward_id="a", price_points=500),
        reward(reward_id="b", price_points=2000),
        reward(reward_id="c", price_points=7200),
        reward(reward_id="d", price_points=3000),
        reward(reward_id="local", price_points=100, region_codes=("110000",)),
        reward(reward_id="gone", price_points=100, stock=0),
    ]
    result = recommend(items, 2500, "330000", NOW, 5)
    assert [(r.reward.reward_id, r.affordable, r.missing_points) for r in result] == [
        ("b", True, 0),
        ("a", True, 0),
        ("d", False, 500),
        ("c", False, 4700),
    ]
