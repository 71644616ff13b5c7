"""National figures: one region's month from its three services' answers, and the national sums of the regions.

Plain arithmetic over the regions' messages. Impact in kind is counted by the project's unit ("tree", "book"); the
forest a tree stands for is 6 m2 (planted 2 m by 3 m), and a mu is 2,000/3 m2, so a tree is 9/1,000 of a mu: kept in
thousandths of a mu so the figure stays an integer (ADR 0608).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards

NATIONAL = "000000"
MILLI_MU_PER_TREE = 9  # 6 m2 a tree / (2,000/3 m2 a mu) = 0.009 mu
TREE_UNIT = "tree"
BOOK_UNIT = "book"

# The PeriodFigures fields that add up across regions.
_POINT_FIELDS = (
    "entries",
    "late_entries",
    "issued_points",
    "redeemed_points",
    "refunded_points",
    "expired_points",
    "donated_points",
    "transferred_out_points",
    "transferred_in_points",
    "adjusted_points",
    "forfeited_points",
    "co2e_grams",
)
_DAY_FIELDS = ("issued_points", "redeemed_points", "expired_points", "donated_points", "co2e_grams")
_CHARITY_FIELDS = ("units", "donated_points", "units_total", "donated_points_total")


def region_figures(
    region_code: str,
    accounts: identity.GetAccountFiguresResponse,
    points: ledger.PeriodFigures,
    charity: Sequence[rewards.CharityProjectFigures],
) -> gw.RegionFigures:
    figures = gw.RegionFigures(
        region_code=region_code,
        accounts_opened=accounts.opened,
        accounts_closed=accounts.closed,
        accounts_open_at_end=accounts.open_at_end,
        accounts_by_channel=accounts.by_channel,
        points=points,
        charity=sorted(charity, key=lambda project: project.project_id),
    )
    _count_impact(figures)
    return figures


def national_figures(year: int, month: int, regions: Iterable[gw.RegionFigures]) -> gw.RegionFigures:
    """The sums over the regions; the month is closed nationally only when it is closed in every region."""
    ordered = list(regions)
    total = gw.RegionFigures(region_code=NATIONAL)
    total.points.year, total.points.month = year, month
    total.points.closed = bool(ordered) and all(region.points.closed for region in ordered)
    channels: dict[int, identity.ChannelAccountFigures] = {}
    projects: dict[str, rewards.CharityProjectFigures] = {}
    behaviours: dict[str, ledger.BehaviourSummary] = {}
    days: dict[tuple[int, int, int], ledger.DayFigures] = {}
    for region in ordered:
        total.accounts_opened += region.accounts_opened
        total.accounts_closed += region.accounts_closed
        total.accounts_open_at_end += region.accounts_open_at_end
        for field in _POINT_FIELDS:
            setattr(total.points, field, getattr(total.points, field) + getattr(region.points, field))
        for channel in region.accounts_by_channel:
            summed = channels.setdefault(channel.channel, identity.ChannelAccountFigures(channel=channel.channel))
            summed.opened += channel.opened
            summed.open_at_end += channel.open_at_end
            summed.closed += channel.closed
        for project in region.charity:
            into = projects.setdefault(
                project.project_id,
                rewards.CharityProjectFigures(
                    project_id=project.project_id,
                    impact_unit=project.impact_unit,
                    points_per_unit=project.points_per_unit,
                ),
            )
            for field in _CHARITY_FIELDS:
                setattr(into, field, getattr(into, field) + getattr(project, field))
        for behaviour in region.points.by_behaviour:
            into_b = behaviours.setdefault(behaviour.behaviour, ledger.BehaviourSummary(behaviour=behaviour.behaviour))
            into_b.credits += behaviour.credits
            into_b.points += behaviour.points
            into_b.co2e_grams += behaviour.co2e_grams
        for day in region.points.by_day:
            key = (day.day.year, day.day.month, day.day.day)
            into_d = days.setdefault(key, ledger.DayFigures(day=day.day))
            for field in _DAY_FIELDS:
                setattr(into_d, field, getattr(into_d, field) + getattr(day, field))
    total.accounts_by_channel.extend(channels[code] for code in sorted(channels))
    total.points.by_day.extend(days[key] for key in sorted(days))
    total.charity.extend(projects[name] for name in sorted(projects))
    total.points.by_behaviour.extend(sorted(behaviours.values(), key=lambda b: (-b.co2e_grams, -b.points, b.behaviour)))
    _count_impact(total)
    return total


def _count_impact(figures: gw.RegionFigures) -> None:
    figures.trees_planted = sum(p.units for p in figures.charity if p.impact_unit == TREE_UNIT)
    figures.books_donated = sum(p.units for p in figures.charity if p.impact_unit == BOOK_UNIT)
    figures.forest_area_milli_mu = figures.trees_planted * MILLI_MU_PER_TREE


def units_national(answers: Iterable[rewards.ListCharityProjectsResponse]) -> dict[str, int]:
    """The national charity counter: units_region summed per project over the regions' answers."""
    totals: dict[str, int] = {}
    for answer in answers:
        for project in answer.projects:
            totals[project.project_id] = totals.get(project.project_id, 0) + project.units_region
    return totals


def national_expiring(regions: Iterable[gw.RegionExpiring]) -> list[ledger.ExpiringMonth]:
    """The regions' expiring points summed month by month (every region answers the same months)."""
    months: dict[tuple[int, int], ledger.ExpiringMonth] = {}
    for region in regions:
        for month in region.months:
            into = months.setdefault(
                (month.year, month.month), ledger.ExpiringMonth(year=month.year, month=month.month)
            )
            into.amount_points += month.amount_points
            into.lots += month.lots
    return [months[key] for key in sorted(months)]
