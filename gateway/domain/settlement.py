"""Settlement: what regions owe each other, summed from their clearing entries, and netted into few payments.

Region B's clearing account records every credit it issued for points that left region A (TRANSFER_IN, negative on
B's clearing) and every reversal of one (positive), each with the reference "xrt/<A>/<B>/<id>". Summed per (A, B)
that is what A owes B, at the reference rate of 100 points = 1 CNY.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.domain.transfers import parse_reference

POINTS_PER_CNY = 100  # the reference rate: 100 points = 1 CNY = 100 cents, so one point is one cent


@dataclass(frozen=True)
class Position:
    debtor_region: str
    creditor_region: str
    points: int

    @property
    def amount_cents(self) -> int:
        return self.points * 100 // POINTS_PER_CNY


@dataclass
class ClearingFlows:
    """Points owed per (debtor region, creditor region), from the clearing entries of every region."""

    owed: dict[tuple[str, str], int] = field(default_factory=dict)

    def add_entry(self, region_code: str, reference: str, amount_points: int) -> None:
        """One entry of `region_code`'s clearing account; only credits issued for points arriving there count."""
        transfer = parse_reference(reference)
        if transfer is None or transfer.to_region != region_code:
            return
        pair = (transfer.from_region, transfer.to_region)
        self.owed[pair] = self.owed.get(pair, 0) - amount_points

    def gross(self) -> list[Position]:
        """Every non-zero flow, ordered by (debtor, creditor)."""
        return [
            Position(debtor_region=debtor, creditor_region=creditor, points=points)
            for (debtor, creditor), points in sorted(self.owed.items())
            if points
        ]

    def net(self) -> list[Position]:
        return net_positions(self.owed)


def net_positions(gross: Mapping[tuple[str, str], int]) -> list[Position]:
    """Multilateral netting: each region's net position, then debtors paired with creditors, largest first.

    gross[(a, b)] = points region a owes region b. The result settles the same net amounts with at most
    (regions - 1) payments.
    """
    net: dict[str, int] = {}
    for (owing, owed), points in gross.items():
        net[owing] = net.get(owing, 0) - points
        net[owed] = net.get(owed, 0) + points
    # Largest amount first; between equal amounts, the larger region code first.
    debtors = iter(sorted((code for code in net if net[code] < 0), key=lambda code: (-net[code], code), reverse=True))
    creditors = iter(sorted((code for code in net if net[code] > 0), key=lambda code: (net[code], code), reverse=True))
    left = {code: abs(value) for code, value in net.items()}
    positions: list[Position] = []
    debtor, creditor = next(debtors, None), next(creditors, None)
    while debtor is not None and creditor is not None:
        points = min(left[debtor], left[creditor])
        positions.append(Position(debtor_region=debtor, creditor_region=creditor, points=points))
        left[debtor] -= points
        left[creditor] -= points
        if left[debtor] == 0:
            debtor = next(debtors, None)
        if left[creditor] == 0:
            creditor = next(creditors, None)
    return positions
