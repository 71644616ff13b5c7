"""Settlement periods: which month each journal entry counts in, and a month's figures summed from its entries.

An entry counts in the month (China time) it was posted in, unless that month was already closed when the entry was
chained into the journal (a posting that committed after the close, or a correction dated into a closed month):
then it counts in the first month still open. Closed months are contiguous (a month closes only after the one before
it), each with the last journal block it includes; block numbers only grow, so "chained after month K closed" is
"block number above K's last block" (ADR 0110). Plain rules and arithmetic; the store runs the sums.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import NamedTuple

from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.summary import BehaviourTotal, EarnGroup, by_behaviour
from service_kit.errors import FailedPrecondition


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def next_month(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return month_key(year + month // 12, month % 12 + 1)


def previous_month(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    return month_key(year - (month == 1), 12 if month == 1 else month - 1)


@dataclass(frozen=True)
class ClosedPeriod:
    period: str  # "2026-11"
    last_block_no: int
    closed_at_us: int


class Selection(NamedTuple):
    """Which entries a month's figures sum: posted in [posted_from_us, posted_before_us), chained at or below
    `up_to_block` (None: any, chained or not), and not among the entries of the closed month before it, i.e. not
    (posted before `taken_before_us` and chained at or below `taken_up_to_block`). Entries posted before
    `late_before_us` are late ones, counted here for a closed month."""

    posted_from_us: int
    posted_before_us: int
    up_to_block: int | None
    taken_before_us: int | None
    taken_up_to_block: int | None
    late_before_us: int


def selection(
    period: str,
    closed: dict[str, ClosedPeriod],
    bounds: Callable[[str], tuple[int, int]],
    closing_block: int | None = None,
) -> Selection:
    """The entries of `period`, given the closed months and a month's bounds (its first instant and the next
    month's). `closing_block`: the month is being closed with this last block (its figures are computed to be
    stored)."""
    start_us, end_us = bounds(period)
    first = min(closed) if closed else None
    last = max(closed) if closed else None
    own = closed.get(period)
    up_to = own.last_block_no if own is not None else closing_block
    takes_late = own is not None or closing_block is not None or (last is not None and period == next_month(last))
    if not takes_late or first is None or period < first:
        # An open month after the first open one (or any month before closes began) has its own postings only.
        return Selection(start_us, end_us, up_to, None, None, start_us)
    before = previous_month(period)
    taken = closed.get(before)
    if taken is None:  # the first month closed: nothing before it was closed, nothing late to take
        return Selection(start_us, end_us, up_to, None, None, start_us)
    return Selection(bounds(first)[0], end_us, up_to, bounds(before)[1], taken.last_block_no, start_us)


def check_can_close(period: str, closed: dict[str, ClosedPeriod]) -> None:
    """A month closes once, and only right after the last closed one (closed months are contiguous)."""
    if period in closed:
        raise FailedPrecondition("PERIOD_ALREADY_CLOSED", f"{period} is closed already", {"period": period})
    if closed and period != next_month(max(closed)):
        raise FailedPrecondition(
            "PERIOD_OUT_OF_ORDER",
            f"{period} cannot close before {next_month(max(closed))}",
            {"period": period, "next": next_month(max(closed))},
        )


class EntrySum(NamedTuple):
    """Entries of one code posted on one day, grouped by which sides are user accounts and whether they are late."""

    code: int
    to_user: bool
    from_user: bool
    late: bool
    entries: int
    points: int
    co2e_grams: int
    day: date


@dataclass(frozen=True)
class DayTotal:
    """One day's points of a period: what the by-day charts show (ADR 0111)."""

    day: str  # ISO date, China time
    issued_points: int = 0
    redeemed_points: int = 0
    expired_points: int = 0
    donated_points: int = 0
    co2e_grams: int = 0


@dataclass(frozen=True)
class PeriodFigures:
    period: str
    closed_at_us: int = 0  # 0 while open
    last_block_no: int = 0
    entries: int = 0
    late_entries: int = 0
    issued_points: int = 0
    redeemed_points: int = 0
    refunded_points: int = 0
    expired_points: int = 0
    donated_points: int = 0
    transferred_out_points: int = 0
    transferred_in_points: int = 0
    adjusted_points: int = 0
    forfeited_points: int = 0
    co2e_grams: int = 0
    by_behaviour: tuple[BehaviourTotal, ...] = field(default=())
    by_day: tuple[DayTotal, ...] = field(default=())

    @property
    def closed(self) -> bool:
        return self.closed_at_us > 0

    def to_json(self) -> str:
        """A closed month's figures as stored: canonical JSON (sorted keys), so equal figures are equal text."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PeriodFigures:
        values = json.loads(text)
        values["by_behaviour"] = tuple(BehaviourTotal(**item) for item in values["by_behaviour"])
        values["by_day"] = tuple(DayTotal(**item) for item in values.get("by_day", ()))
        return cls(**values)


# The field each code adds to, by the side the user account is on: credits to users (True) or debits of them (False).
_FIELDS = {
    (TransferCode.EARN, True): "issued_points",
    (TransferCode.REDEEM, False): "redeemed_points",
    (TransferCode.REFUND, True): "refunded_points",
    (TransferCode.EXPIRE, False): "expired_points",
    (TransferCode.DONATE, False): "donated_points",
    (TransferCode.TRANSFER_OUT, False): "transferred_out_points",
    (TransferCode.TRANSFER_IN, True): "transferred_in_points",
    (TransferCode.FORFEIT, False): "forfeited_points",
}


def figures(
    period: str, sums: Sequence[EntrySum], earns: Iterable[EarnGroup], closed_at_us: int = 0, last_block_no: int = 0
) -> PeriodFigures:
    """The month's figures from its entries' sums. An entry between two user accounts (none are posted today) would
    count on both sides; one between two system accounts counts in no field."""
    totals: dict[str, int] = {"entries": 0, "late_entries": 0, "co2e_grams": 0}
    for item in sums:
        if not (item.to_user or item.from_user):
            continue
        totals["entries"] += item.entries
        totals["late_entries"] += item.entries if item.late else 0
        for user_side, present in ((True, item.to_user), (False, item.from_user)):
            if not present:
                continue
            if item.code == TransferCode.ADJUST:
                signed = item.points if user_side else -item.points
                totals["adjusted_points"] = totals.get("adjusted_points", 0) + signed
                continue
            name = _FIELDS.get((TransferCode(item.code), user_side))
            if name is not None:
                totals[name] = totals.get(name, 0) + item.points
        if item.code == TransferCode.EARN and item.to_user:
            totals["co2e_grams"] += item.co2e_grams
    return PeriodFigures(
        period=period,
        closed_at_us=closed_at_us,
        last_block_no=last_block_no,
        by_behaviour=by_behaviour(earns),
        by_day=by_day(period, sums),
        **totals,
    )


# The DayTotal field each code's entries add to, with the side the user account is on.
_DAY_FIELDS = {
    (TransferCode.EARN, True): "issued_points",
    (TransferCode.REDEEM, False): "redeemed_points",
    (TransferCode.EXPIRE, False): "expired_points",
    (TransferCode.DONATE, False): "donated_points",
}


def by_day(period: str, sums: Iterable[EntrySum]) -> tuple[DayTotal, ...]:
    """Issued, redeemed, expired and donated points and CO2e per posting day; late entries on the period's first day
    (their own day lies in a closed month), so the days add up to the period's totals."""
    days: dict[date, dict[str, int]] = {}
    for item in sums:
        day = first_day(period) if item.late else item.day
        for user_side, present in ((True, item.to_user), (False, item.from_user)):
            name = _DAY_FIELDS.get((TransferCode(item.code), user_side)) if present else None
            if name is None:
                continue
            values = days.setdefault(day, {})
            values[name] = values.get(name, 0) + item.points
            if name == "issued_points":
                values["co2e_grams"] = values.get("co2e_grams", 0) + item.co2e_grams
    return tuple(DayTotal(day.isoformat(), **days[day]) for day in sorted(days))


def first_day(period: str) -> date:
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1)
