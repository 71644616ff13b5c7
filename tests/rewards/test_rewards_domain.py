"""The pure rules: limits per CST day and month, region, window, stock, vouchers, recommendations, the catalog."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from rewards_svc.catalog import load_catalog
from rewards_svc.domain import (
    CharityProject,
    Reward,
    Usage,
    apply_update,
    check_redeemable,
    donation_units,
    new_voucher_code,
    normalize_voucher_code,
    period_starts,
    plan_vouchers,
    recommend,
    validate_reward,
    voucher_expiry,
)
from service_kit.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
NO_USAGE = Usage(0, 0, 0)


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


def test_the_seed_catalog_has_every_benefit_of_the_domain_with_local_ones_locked_to_their_region() -> None:
    catalog = load_catalog()
    by_id = {item.reward_id: item for item in catalog.rewards}
    assert len(by_id) == 10
    assert by_id["beijing-bus-pass"].region_codes == ("110000",)
    assert by_id["shanghai-health-check"].price_points == 7200
    assert by_id["shanghai-health-check"].face_value_cents == 30_000
    assert by_id["chimelong-half-price"].region_codes == ("440100",)
    assert by_id["transit-topup"].divisible and by_id["transit-topup"].price_points == 100
    assert {(p.project_id, p.points_per_unit) for p in catalog.projects} == {("trees", 1000), ("childrens-books", 5000)}


def test_a_reward_is_refused_outside_its_regions() -> None:
    assert reason_of(reward(region_codes=("110000",)), region="310000") == "NOT_AVAILABLE_IN_REGION"
    check_redeemable(reward(region_codes=("110000",)), "110000", 1, NO_USAGE, NOW)


def test_a_retired_reward_is_refused_first() -> None:
    assert reason_of(reward(retired=True, stock=0)) == "REWARD_RETIRED"


def test_the_validity_window_opens_and_closes() -> None:
    assert reason_of(reward(available_from=NOW + timedelta(seconds=1))) == "NOT_YET_AVAILABLE"
    assert reason_of(reward(available_until=NOW)) == "NO_LONGER_AVAILABLE"


def test_limits_count_units_of_the_day_month_and_lifetime() -> None:
    assert reason_of(reward(limit_per_day=1), usage=Usage(1, 1, 1)) == "LIMIT_REACHED"
    assert reason_of(reward(limit_per_month=3), quantity=2, usage=Usage(0, 2, 2)) == "LIMIT_REACHED"
    assert reason_of(reward(limit_lifetime=1), usage=Usage(0, 0, 1)) == "LIMIT_REACHED"
    check_redeemable(reward(limit_per_day=2), "330000", 1, Usage(1, 5, 9), NOW)


def test_stock_below_the_quantity_is_out_of_stock() -> None:
    assert reason_of(reward(stock=1), quantity=2) == "OUT_OF_STOCK"
    check_redeemable(reward(stock=2), "330000", 2, NO_USAGE, NOW)


def test_days_and_months_start_at_midnight_china_standard_time() -> None:
    just_after_midnight_cst = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)  # 1 April 00:30 in Beijing
    day, month = period_starts(just_after_midnight_cst)
    assert day == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    assert month == day


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


def test_donations_are_whole_units() -> None:
    trees = CharityProject("trees", "Trees", "植树", 1000, "tree")
    assert donation_units(trees, 3000) == 3
    with pytest.raises(InvalidArgument):
        donation_units(trees, 1500)


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
