"""The benefits catalog: what a reward is, how ops may change it, where and when it can be redeemed, and which
rewards to recommend for a balance."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound

UNLIMITED_STOCK = -1
MAX_PRICE_POINTS = 10_000_000
REWARD_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REGION_CODE_PATTERN = re.compile(r"^[0-9]{6}$")
CATEGORIES = ("PRACTICAL", "CULTURE_TOURISM", "CHARITY")
DEFAULT_RECOMMENDATIONS = 5
MAX_RECOMMENDATIONS = 50


@dataclass(frozen=True)
class Reward:
    reward_id: str
    name_en: str
    name_zh: str
    category: str
    price_points: int
    face_value_cents: int
    provider: str
    # Empty: redeemable nationwide.
    region_codes: tuple[str, ...]
    # UNLIMITED_STOCK (-1) or the units left.
    stock: int
    # 0 means no limit.
    limit_per_day: int
    limit_per_month: int
    limit_lifetime: int
    available_from: datetime | None
    available_until: datetime | None
    voucher_lifetime_days: int
    divisible: bool = False
    retired: bool = False
    terms: str = ""


def reward_not_found(reward_id: str) -> NotFound:
    return NotFound("REWARD_NOT_FOUND", f"no reward {reward_id}", {"reward_id": reward_id})


# The fields ops may change with UpdateReward (reward_id and retired have their own operations).
UPDATABLE_FIELDS = frozenset(field.name for field in dataclasses.fields(Reward)) - {"reward_id", "retired"}


def validate_reward(reward: Reward, prefix: str = "reward") -> None:
    """Raises InvalidArgument naming the first field that is wrong."""

    def check(condition: bool, name: str, message: str) -> None:
        if not condition:
            raise InvalidArgument(f"{prefix}.{name}", message)

    check(bool(REWARD_ID_PATTERN.match(reward.reward_id)), "reward_id", "lower-case letters, digits, _ or -, ≤64")
    check(0 < len(reward.name_en) <= 200, "name_en", "required, at most 200 characters")
    check(len(reward.name_zh) <= 200, "name_zh", "at most 200 characters")
    check(reward.category in CATEGORIES, "category", f"one of {', '.join(CATEGORIES)}")
    check(0 < reward.price_points <= MAX_PRICE_POINTS, "price_points", f"between 1 and {MAX_PRICE_POINTS}")
    check(reward.face_value_cents >= 0, "face_value_cents", "must not be negative")
    check(0 < len(reward.provider) <= 200, "provider", "required, at most 200 characters")
    for code in reward.region_codes:
        check(bool(REGION_CODE_PATTERN.match(code)), "region_codes", f"6-digit GB/T 2260 codes, got {code!r}")
    check(len(set(reward.region_codes)) == len(reward.region_codes), "region_codes", "each region once")
    check(reward.stock >= UNLIMITED_STOCK, "stock", "-1 (unlimited) or the units left")
    for name in ("limit_per_day", "limit_per_month", "limit_lifetime"):
        check(getattr(reward, name) >= 0, name, "0 (no limit) or a positive count")
    check(1 <= reward.voucher_lifetime_days <= 3660, "voucher_lifetime_days", "between 1 and 3660")
    if reward.available_from is not None and reward.available_until is not None:
        check(reward.available_until > reward.available_from, "available_until", "must be after available_from")
    check(len(reward.terms) <= 4000, "terms", "at most 4000 characters")


def validate_category(category: str) -> str:
    """A category filter: empty (all) or one of CATEGORIES."""
    if category and category not in CATEGORIES:
        raise InvalidArgument("category", f"one of {', '.join(CATEGORIES)}")
    return category


def apply_update(current: Reward, changes: Reward, mask: Sequence[str]) -> Reward:
    """The reward with the masked fields taken from `changes`; validated. Retired rewards do not change."""
    if not mask:
        raise InvalidArgument("update_mask", "name at least one field to change")
    unknown = [name for name in mask if name not in UPDATABLE_FIELDS]
    if unknown:
        raise InvalidArgument("update_mask", f"cannot change {', '.join(unknown)}")
    if current.retired:
        raise FailedPrecondition("REWARD_RETIRED", f"reward {current.reward_id} is retired")
    updated = dataclasses.replace(current, **{name: getattr(changes, name) for name in mask})
    validate_reward(updated)
    return updated


def retire(current: Reward) -> Reward:
    return dataclasses.replace(current, retired=True)


def has_counted_stock(reward: Reward) -> bool:
    return reward.stock != UNLIMITED_STOCK


def available_in(reward: Reward, region_code: str) -> bool:
    """Whether the reward may be redeemed in the region (an empty region list means nationwide)."""
    return not reward.region_codes or region_code in reward.region_codes


def redeemable_here(reward: Reward, region_code: str, now: datetime) -> bool:
    return (
        not reward.retired
        and reward.stock != 0
        and available_in(reward, region_code)
        and (reward.available_from is None or reward.available_from <= now)
        and (reward.available_until is None or now < reward.available_until)
    )


@dataclass(frozen=True)
class Recommendation:
    reward: Reward
    affordable: bool
    missing_points: int


def validate_max_results(max_results: int) -> int:
    """How many recommendations of each kind to give: 0 means the default."""
    if not 0 <= max_results <= MAX_RECOMMENDATIONS:
        raise InvalidArgument("max_results", f"between 0 (default {DEFAULT_RECOMMENDATIONS}) and {MAX_RECOMMENDATIONS}")
    return max_results or DEFAULT_RECOMMENDATIONS


def recommend(
    rewards: Iterable[Reward], available_points: int, region_code: str, now: datetime, max_results: int
) -> list[Recommendation]:
    """Affordable rewards, dearest first (the most the points buy), then the nearest ones still out of reach."""
    candidates = [reward for reward in rewards if redeemable_here(reward, region_code, now)]
    affordable = sorted(
        (reward for reward in candidates if reward.price_points <= available_points),
        key=lambda reward: (-reward.price_points, reward.reward_id),
    )
    out_of_reach = sorted(
        (reward for reward in candidates if reward.price_points > available_points),
        key=lambda reward: (reward.price_points, reward.reward_id),
    )
    reachable = [Recommendation(reward=reward, affordable=True, missing_points=0) for reward in affordable]
    missing = [
        Recommendation(reward=reward, affordable=False, missing_points=reward.price_points - available_points)
        for reward in out_of_reach
    ]
    return reachable[:max_results] + missing[:max_results]
