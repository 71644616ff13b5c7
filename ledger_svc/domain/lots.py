"""Lots: points keyed by (account, earned day) that expire together; spending takes the soonest-expiring first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from ledger_svc.domain.refusal import Refusal


class LotKey(NamedTuple):
    """Identity of a lot. Ordering is FIFO order: soonest expiry first, then the earlier earned day."""

    account: str
    expires_at_us: int
    earned_on: date


def is_recent(earned_on: date, lots_moved_through: date) -> bool:
    """Whether a lot of the day lives in recent_lots: later than its account's moved-through day (ADR 0137)."""
    return earned_on > lots_moved_through


@dataclass
class Portion:
    """Points taken from, or put into, one lot. lot_id is known once the lot exists in the store."""

    key: LotKey
    amount_points: int
    lot_id: int | None = None


@dataclass
class LotState:
    key: LotKey
    remaining_points: int
    lot_id: int | None = None


@dataclass
class UserAccount:
    """A user account as a transaction sees it after locking: balance = points in lots + held points."""

    account: str
    balance_points: int
    held_points: int
    lots: dict[LotKey, LotState] = field(default_factory=dict)
    # The last earning day whose lots are in the per-account table; later days' lots are recent (ADR 0137). Known to
    # a transaction that may create lots (it read it with the lock); None where none is created (the expiry sweep).
    lots_moved_through: date | None = None

    def available_points(self, now_us: int) -> int:
        """Spendable now: unexpired points in lots (held points are already out of the lots)."""
        return sum(lot.remaining_points for lot in self.lots.values() if lot.key.expires_at_us > now_us)

    def plan_fifo(self, amount_points: int, now_us: int) -> list[Portion]:
        """Which lots a debit of `amount_points` takes, soonest-expiring first; expired lots are never taken."""
        available = self.available_points(now_us)
        if amount_points > available:
            raise Refusal(
                "INSUFFICIENT_POINTS",
                f"account {self.account} has {available} spendable points, {amount_points} needed",
            )
        portions: list[Portion] = []
        still_needed = amount_points
        for key in sorted(self.lots):
            if still_needed == 0:
                break
            lot = self.lots[key]
            if key.expires_at_us <= now_us or lot.remaining_points == 0:
                continue
            take = min(lot.remaining_points, still_needed)
            portions.append(Portion(key, take, lot.lot_id))
            still_needed -= take
        assert still_needed == 0, "available points were counted but not found"
        return portions


def split_fifo(portions: list[Portion], amount_points: int) -> tuple[list[Portion], list[Portion]]:
    """Splits reserved portions (FIFO order) into the first `amount_points` and the rest."""
    taken: list[Portion] = []
    rest: list[Portion] = []
    still_needed = amount_points
    for portion in sorted(portions, key=lambda item: item.key):
        take = min(portion.amount_points, still_needed)
        if take:
            taken.append(Portion(portion.key, take, portion.lot_id))
        if portion.amount_points - take:
            rest.append(Portion(portion.key, portion.amount_points - take, portion.lot_id))
        still_needed -= take
    assert still_needed == 0, "split larger than the portions"
    return taken, rest
