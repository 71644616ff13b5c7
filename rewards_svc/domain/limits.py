"""Per-account limits of a reward: how many units an account may redeem per China Standard Time day, per month and
in its lifetime. PENDING and COMPLETED redemptions count; cancelled and expired vouchers keep counting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rewards_svc.domain.catalog import Reward
from service_kit.clock import china_day, start_of_china_day
from service_kit.errors import FailedPrecondition


@dataclass(frozen=True)
class Usage:
    """Limit units an account already used of one reward (PENDING and COMPLETED redemptions)."""

    today: int
    this_month: int
    lifetime: int


NO_USAGE = Usage(today=0, this_month=0, lifetime=0)


def is_limited(reward: Reward) -> bool:
    return bool(reward.limit_per_day or reward.limit_per_month or reward.limit_lifetime)


def limit_units(reward: Reward, quantity: int) -> int:
    """What one redemption counts against the limits: 1 for a divisible reward, else its quantity."""
    return 1 if reward.divisible else quantity


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    """The start of today and of this month in China Standard Time, as UTC instants."""
    today = china_day(now)
    return start_of_china_day(today), start_of_china_day(today.replace(day=1))


def check_limits(reward: Reward, quantity: int, usage: Usage) -> None:
    """Raises FailedPrecondition(LIMIT_REACHED) naming the first period whose limit this redemption would pass."""
    units = limit_units(reward, quantity)
    for period, limit, used in (
        ("day", reward.limit_per_day, usage.today),
        ("month", reward.limit_per_month, usage.this_month),
        ("lifetime", reward.limit_lifetime, usage.lifetime),
    ):
        if limit and used + units > limit:
            raise FailedPrecondition(
                "LIMIT_REACHED",
                f"at most {limit} per account per {period}",
                {"period": period, "limit": limit, "used": used},
            )
