"""What a user sees: spendable, held and soon-expiring points, computed from lots and holds at an instant."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from ledger_svc.domain.lots import LotKey
from ledger_svc.domain.time import US_PER_DAY, day_of

EXPIRING_SOON_US = 30 * US_PER_DAY


@dataclass(frozen=True)
class LotView:
    """A lot as readers see it: remaining includes points of holds that timed out but were not swept yet."""

    lot_id: int
    key: LotKey
    credited_points: int
    remaining_points: int


@dataclass(frozen=True)
class BalanceView:
    available_points: int
    held_points: int
    total_points: int
    expiring_within_30_days_points: int


def balance_view(lots: list[LotView], held_points: int, now_us: int) -> BalanceView:
    live = [lot for lot in lots if lot.key.expires_at_us > now_us]
    available = sum(lot.remaining_points for lot in live)
    expiring = sum(lot.remaining_points for lot in live if lot.key.expires_at_us <= now_us + EXPIRING_SOON_US)
    return BalanceView(
        available_points=available,
        held_points=held_points,
        total_points=available + held_points,
        expiring_within_30_days_points=expiring,
    )


def balance_from_sums(balance_points: int, live_held_points: int, expired: int, expiring: int) -> BalanceView:
    """The same answer as `balance_view` from the account's maintained balance (points in lots + pending holds,
    timed-out ones included), its live holds and the points of only the lots that expire within 30 days (ADR 0117):
    those expired but not swept yet, and those expiring after now. Expired points are not available; timed-out
    holds' points are back in their lots (the sums count them there), so what is neither live-held nor expired is
    available."""
    available = balance_points - live_held_points - expired
    return BalanceView(
        available_points=available,
        held_points=live_held_points,
        total_points=available + live_held_points,
        expiring_within_30_days_points=expiring,
    )


def expiring_by_day(lots: list[LotView], now_us: int, within_us: int) -> list[tuple[date, int]]:
    """Points that expire within the window, per expiry day (CST), soonest first."""
    per_day: dict[date, int] = defaultdict(int)
    for lot in lots:
        if now_us < lot.key.expires_at_us <= now_us + within_us and lot.remaining_points > 0:
            per_day[day_of(lot.key.expires_at_us)] += lot.remaining_points
    return sorted(per_day.items())
