"""A user account's monthly summary: the month's journal entries summed by kind, CO2e by behaviour, and the points
about to expire. Plain arithmetic over rows the store reads; the sums equal the statement's for the same month."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from ledger_svc.domain.names import TransferCode


class CodeSum(NamedTuple):
    """The month's entries of one code on one side of the account: incoming (credits) or not (debits)."""

    code: int
    incoming: bool
    entries: int
    points: int
    co2e_grams: int


class EarnGroup(NamedTuple):
    """The month's earn credits sharing their metadata (partner, behaviour, rule)."""

    metadata_json: str
    entries: int
    points: int
    co2e_grams: int


@dataclass(frozen=True)
class BehaviourTotal:
    behaviour: str
    events: int
    points: int
    co2e_grams: int


@dataclass(frozen=True)
class MonthlySummary:
    account: str
    month: date  # its first day
    earned_points: int = 0
    redeemed_points: int = 0
    refunded_points: int = 0
    expired_points: int = 0
    donated_points: int = 0
    transferred_out_points: int = 0
    transferred_in_points: int = 0
    adjusted_points: int = 0  # net: credits less debits
    forfeited_points: int = 0
    net_change_points: int = 0
    co2e_grams: int = 0
    by_behaviour: tuple[BehaviourTotal, ...] = ()
    expiring: tuple[tuple[date, int], ...] = field(default=())


# Which field each code's debits (False) or credits (True) add to; the sign is the field's meaning.
_FIELDS = {
    (TransferCode.EARN, True): "earned_points",
    (TransferCode.REDEEM, False): "redeemed_points",
    (TransferCode.REFUND, True): "refunded_points",
    (TransferCode.EXPIRE, False): "expired_points",
    (TransferCode.DONATE, False): "donated_points",
    (TransferCode.TRANSFER_OUT, False): "transferred_out_points",
    (TransferCode.TRANSFER_IN, True): "transferred_in_points",
    (TransferCode.FORFEIT, False): "forfeited_points",
}


def summarise(
    account: str,
    month: date,
    sums: Iterable[CodeSum],
    earns: Iterable[EarnGroup],
    expiring: Iterable[tuple[date, int]],
) -> MonthlySummary:
    totals: dict[str, int] = {}
    net = co2e = 0
    for entry in sums:
        signed = entry.points if entry.incoming else -entry.points
        net += signed
        co2e += entry.co2e_grams if entry.incoming else 0
        if entry.code == TransferCode.ADJUST:
            totals["adjusted_points"] = totals.get("adjusted_points", 0) + signed
            continue
        name = _FIELDS.get((TransferCode(entry.code), entry.incoming))
        if name is not None:
            totals[name] = totals.get(name, 0) + entry.points
    return MonthlySummary(
        account=account,
        month=month,
        net_change_points=net,
        co2e_grams=co2e,
        by_behaviour=by_behaviour(earns),
        expiring=tuple(expiring),
        **totals,
    )


def by_behaviour(earns: Iterable[EarnGroup]) -> tuple[BehaviourTotal, ...]:
    """Earn credits by the behaviour their metadata names ("" when none does), the most CO2e first."""
    totals: dict[str, list[int]] = {}
    for group in earns:
        try:
            behaviour = str(json.loads(group.metadata_json or "{}").get("behaviour", ""))
        except (ValueError, AttributeError):
            behaviour = ""
        total = totals.setdefault(behaviour, [0, 0, 0])
        total[0] += group.entries
        total[1] += group.points
        total[2] += group.co2e_grams
    ordered = sorted(totals.items(), key=lambda item: (-item[1][2], -item[1][1], item[0]))
    return tuple(BehaviourTotal(name, *values) for name, values in ordered)
