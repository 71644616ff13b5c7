"""Simulation: the same points budget spent on offers chosen by habit profile vs offers spread uniformly.

A synthetic region of residents with four documented transit habits lives 28 days (its history, folded into real
habit profiles by incentives_svc.domain.profiles), then a 7-day campaign runs: "take the bus or metro this week:
+50 points", 50,000 points of budget, bonuses paid first come first served until the budget is spent.

- uniform: offers go to residents in random order, whoever they are;
- profiled: offers go first to residents the real targeting rules pick (incentives_svc.domain.offers.facts_for):
  LAPSED (no trip in the last 7 days, including never), then everyone else in random order.

Habits (the population; per-day trip probabilities in China Standard Time):
    commuters     35%   0.85 on weekdays, 0.20 on weekends
    occasional    25%   0.20 every day
    lapsed        20%   0.50 a day in the first two weeks, 0.01 a day since
    non-riders    20%   never

Response (ASSUMED, not measured: the script shows what these assumptions imply, nothing more). 60% of those offered
accept. Whether someone rides during the campaign week without an offer follows their habit; an accepted offer adds
a ride with this probability when they would not have ridden: commuters 0.05, occasional 0.20, lapsed 0.35,
non-riders 0.10. A bonus is paid for the first ride of the week of anyone who accepted, caused by the offer or not:
paying for rides that would have happened anyway is what a badly aimed budget wastes.

Prints, per strategy: offers sent, bonuses paid, extra rides (caused by an offer), and extra rides and grams of CO2e
per 1,000 points of budget (515.5 g per trip: the catalog's transit_trip factor). Deterministic (seeded);
`python bench/sim_incentives.py [residents] [seed]`.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from incentives_svc.domain.campaigns import Campaign, CampaignSpec, Scope, TargetKind, TargetRule
from incentives_svc.domain.offers import facts_for
from incentives_svc.domain.profiles import ObservedEvent, Profile, fold

HISTORY_START = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # a Monday, 08:30 in Beijing
HISTORY_DAYS = 28
CAMPAIGN_DAYS = 7
BUDGET_POINTS = 50_000
BONUS_POINTS = 50
ACCEPT_RATE = 0.60
CO2E_MILLIGRAMS_PER_TRIP = 515_500

# name: (share, weekday probability in history, weekend probability, probability after day 14, uplift)
HABITS = {
    "commuter": (0.35, 0.85, 0.20, None, 0.05),
    "occasional": (0.25, 0.20, 0.20, None, 0.20),
    "lapsed": (0.20, 0.50, 0.50, 0.01, 0.35),
    "non-rider": (0.20, 0.0, 0.0, None, 0.10),
}


@dataclass(frozen=True)
class Resident:
    habit: str
    profile: Profile | None


def daily_probability(habit: str, day: int) -> float:
    _, weekday, weekend, late, _ = HABITS[habit]
    if late is not None and day >= 14:
        return late
    return weekend if day % 7 in (5, 6) else weekday


def population(size: int, rng: random.Random) -> list[Resident]:
    names = list(HABITS)
    shares = [HABITS[name][0] for name in names]
    residents = []
    for _ in range(size):
        habit = rng.choices(names, shares)[0]
        trips = [
            ObservedEvent("transit_trip", HISTORY_START + timedelta(days=day))
            for day in range(HISTORY_DAYS)
            if rng.random() < daily_probability(habit, day)
        ]
        residents.append(Resident(habit, fold(None, trips) if trips else None))
    return residents


def rides_anyway(habit: str, rng: random.Random) -> bool:
    """Whether the resident rides at least once in the campaign week without an offer."""
    return any(rng.random() < daily_probability(habit, HISTORY_DAYS + day) for day in range(CAMPAIGN_DAYS))


def run(order: list[Resident], seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    budget, offers, paid, extra = BUDGET_POINTS, 0, 0, 0
    for resident in order:
        if budget < BONUS_POINTS:
            break
        offers += 1
        anyway = rides_anyway(resident.habit, rng)
        if rng.random() >= ACCEPT_RATE:
            continue
        caused = not anyway and rng.random() < HABITS[resident.habit][4]
        if anyway or caused:
            budget -= BONUS_POINTS
            paid += 1
            extra += caused
    spent = BUDGET_POINTS - budget
    return {"offers": offers, "bonuses_paid": paid, "points_spent": spent, "extra_rides": extra}


def lapsed_rule(now: datetime) -> Campaign:
    spec = CampaignSpec(
        name="back on the bus",
        behaviour="transit_trip",
        bonus_points=BONUS_POINTS,
        bonus_percent=0,
        target=TargetRule(TargetKind.LAPSED, days=7),
        starts_at=now,
        ends_at=now + timedelta(days=CAMPAIGN_DAYS),
        budget_points=BUDGET_POINTS,
        scope=Scope.REGIONAL,
    )
    return Campaign("sim", spec, now, funded=True)


def profiled_order(residents: list[Resident], rng: random.Random) -> list[Resident]:
    now = HISTORY_START + timedelta(days=HISTORY_DAYS)
    rule = lapsed_rule(now)
    today = (now + timedelta(hours=8)).date()
    # A resident without a profile has no trips to fold: to the rule that is "never done", as for the service,
    # which profiles consenting residents from their first event (here: an empty profile from the first day).
    empty = Profile(first_day=HISTORY_START.date())
    picked = [r for r in residents if facts_for(rule, r.profile or empty, today) is not None]
    rest = [r for r in residents if facts_for(rule, r.profile or empty, today) is None]
    rng.shuffle(picked)
    rng.shuffle(rest)
    return picked + rest


def per_thousand(result: dict[str, int]) -> dict[str, float | int]:
    points = max(result["points_spent"], 1)
    rides = round(result["extra_rides"] * 1000 / points, 2)
    # Grams per 1,000 points = rides x milligrams per ride / points: whole grams, no float in CO2e.
    return {
        "extra_rides_per_1000_points": rides,
        "co2e_grams_per_1000_points": result["extra_rides"] * CO2E_MILLIGRAMS_PER_TRIP // points,
    }


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 23
    rng = random.Random(seed)
    residents = population(size, rng)
    uniform_order = list(residents)
    rng.shuffle(uniform_order)
    results: dict[str, dict[str, float | int]] = {
        "uniform": dict(run(uniform_order, seed + 1)),
        "profiled": dict(run(profiled_order(residents, rng), seed + 1)),
    }
    print(f"{size:,} residents, budget {BUDGET_POINTS:,} points, +{BONUS_POINTS} per bonus, seed {seed}")
    header = f"{'strategy':<10} {'offers':>8} {'bonuses':>8} {'extra rides':>12} {'rides/1k pts':>13}"
    print(f"{header} {'g CO2e/1k pts':>14}")
    for name, result in results.items():
        rates = per_thousand({key: int(value) for key, value in result.items()})
        print(
            f"{name:<10} {result['offers']:>8,} {result['bonuses_paid']:>8,} {result['extra_rides']:>12,} "
            f"{rates['extra_rides_per_1000_points']:>13} {rates['co2e_grams_per_1000_points']:>14,}"
        )
        result.update(rates)
    uniform_rate = results["uniform"]["extra_rides"] / max(results["uniform"]["points_spent"], 1)
    profiled_rate = results["profiled"]["extra_rides"] / max(results["profiled"]["points_spent"], 1)
    ratio = round(profiled_rate / uniform_rate, 2) if uniform_rate else None
    print(json.dumps({"residents": size, "seed": seed, "ratio": ratio, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
