"""Points and grams of CO2e for accepted events, with daily caps per account, behaviour and CST day.

Integer arithmetic only. Quantities are thousandths of a unit and factors milligrams per unit, so
    points     = points_per_unit x counted_milli // 1000
    co2e_grams = co2e_milligrams_per_unit x counted_milli // 1_000_000
Both round down: a score never overstates what happened (2.5 km at 3 points/km earns 7 points).
Only the counted quantity (up to the cap) earns points or CO2e: a cap is also a plausibility guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import NamedTuple

from ingest_svc.domain.events import DAILY_CAP_REACHED, ValidEvent, new_tuple
from ingest_svc.domain.rules import MILLI, RuleVersion

CapKey = tuple[str, str, date]  # (account number, behaviour, CST day)


class Score(NamedTuple):
    """A named tuple, not a frozen dataclass: one per event, and the dataclass's __init__ cost ~4x as much."""

    event: ValidEvent
    account_number: str
    counted_milli: int
    points: int
    co2e_grams: int
    # "" or DAILY_CAP_REACHED (nothing or only part of the quantity counted).
    reason: str
    message: str
    counted_before_milli: int

    @property
    def cap_key(self) -> CapKey:
        return (self.account_number, self.event.rule.behaviour, self.event.day)


def points_per_unit(rule: RuleVersion, tier: str) -> int:
    return rule.tier_points[tier] if rule.tier_points else rule.points_per_unit


def points_for(rule: RuleVersion, tier: str, counted_milli: int) -> int:
    return points_per_unit(rule, tier) * counted_milli // MILLI


def co2e_grams_for(rule: RuleVersion, counted_milli: int) -> int:
    return rule.co2e_milligrams_per_unit * counted_milli // (MILLI * MILLI)


def score_events(
    events: Iterable[tuple[ValidEvent, str]], counted_so_far: Mapping[CapKey, int]
) -> tuple[list[Score], dict[CapKey, int]]:
    """Scores (event, account number) pairs in order; returns the scores and the new counted totals per cap key.

    `counted_so_far` is what earlier batches counted (missing keys count zero); events earlier in the same batch
    count toward the cap of later ones.
    """
    totals: dict[CapKey, int] = {}
    scores: list[Score] = []
    append = scores.append
    for valid, account_number in events:
        rule = valid.rule
        day = valid.day
        key: CapKey = (account_number, rule.behaviour, day)
        before = totals.get(key)
        if before is None:
            before = counted_so_far.get(key, 0)
        quantity = valid.event.quantity_milli
        cap = rule.daily_cap_milli
        counted = max(0, min(quantity, cap - before)) if cap else quantity
        reason = message = ""
        if counted < quantity:
            reason = DAILY_CAP_REACHED
            message = (
                f"daily cap of {cap} reached: counted {counted} of {quantity} "
                f"({before} counted earlier on {day.isoformat()} CST)"
            )
        totals[key] = before + counted
        # points_for and co2e_grams_for, inlined (two calls per event).
        tier_points = rule.tier_points
        points = (tier_points[valid.event.tier] if tier_points else rule.points_per_unit) * counted // MILLI
        grams = rule.co2e_milligrams_per_unit * counted // (MILLI * MILLI)
        append(new_tuple(Score, (valid, account_number, counted, points, grams, reason, message, before)))
    return scores, totals
