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


class DailyTotal(NamedTuple):
    """What a batch adds to one region's statistics of one behaviour on one CST day."""

    region_code: str
    behaviour: str
    day: date
    events: int
    points: int
    co2e_grams: int


def points_per_unit(rule: RuleVersion, tier: str) -> int:
    return rule.tier_points[tier] if rule.tier_points else rule.points_per_unit


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
        points = points_per_unit(rule, valid.event.tier) * counted // MILLI
        grams = rule.co2e_milligrams_per_unit * counted // (MILLI * MILLI)
        append(new_tuple(Score, (valid, account_number, counted, points, grams, reason, message, before)))
    return scores, totals


def daily_totals(scores: Iterable[Score]) -> list[DailyTotal]:
    """The scores summed per region, behaviour and CST day, in the order each key first appears."""
    sums: dict[tuple[str, str, date], list[int]] = {}
    for score in scores:
        key = (score.event.event.region_code, score.event.rule.behaviour, score.event.day)
        entry = sums.setdefault(key, [0, 0, 0])
        entry[0] += 1
        entry[1] += score.points
        entry[2] += score.co2e_grams
    return [DailyTotal(region, behaviour, day, *counts) for (region, behaviour, day), counts in sums.items()]
