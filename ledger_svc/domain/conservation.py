"""Conservation: every point of a region is accounted for (ADR 0101). The sum of all balances is zero; what was
issued is outstanding, redeemed, expired, donated, transferred away or adjusted; user balances are their lots plus
pending holds; every balance is the sum of its journal entries.

Two depths (ADR 0129): the full audit reads every lot and every journal entry per account; the incremental check
compares each system account, and users as a whole, with the sums stored per sealed block plus the unsealed tail,
and leaves lots and single accounts to the full audit."""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.accounts import (
    ADJUSTMENT_ACCOUNT,
    CLEARING_ACCOUNT,
    DONATION_ACCOUNT,
    EXPIRY_ACCOUNT,
    ISSUANCE_ACCOUNT,
    REDEMPTION_ACCOUNT,
)


@dataclass(frozen=True)
class ConservationSums:
    """The totals the store counts for a check."""

    user_balances_points: int
    user_held_points: int
    system_balances: dict[str, int]
    lot_points: int | None  # None: not counted (the incremental check)
    pending_hold_points: int
    pending_hold_lot_points: int
    # Full audit: accounts whose balance differs from the sum of their journal entries. Incremental: system accounts
    # whose balance differs from their stored block sums plus the unsealed tail, plus one if users as a whole do.
    journal_mismatches: int

    @property
    def full_audit(self) -> bool:
        return self.lot_points is not None


@dataclass(frozen=True)
class Conservation:
    balanced: bool
    issued_points: int
    outstanding_points: int
    redeemed_points: int
    expired_points: int
    donated_points: int
    net_transferred_points: int
    adjusted_points: int
    sum_of_all_balances_points: int
    problems: tuple[str, ...]
    full_audit: bool = True


def conservation(sums: ConservationSums) -> Conservation:
    """The check's answer: the totals, and each rule they break in words."""
    system = sums.system_balances
    issued = -system.get(ISSUANCE_ACCOUNT, 0)
    parts = {
        "redeemed": system.get(REDEMPTION_ACCOUNT, 0),
        "expired": system.get(EXPIRY_ACCOUNT, 0),
        "donated": system.get(DONATION_ACCOUNT, 0),
        "net_transferred": system.get(CLEARING_ACCOUNT, 0),
        "adjusted": system.get(ADJUSTMENT_ACCOUNT, 0),
    }
    total = sums.user_balances_points + sum(system.values())
    problems = []
    if total != 0:
        problems.append(f"balances sum to {total}, not 0")
    if issued != sums.user_balances_points + sum(parts.values()):
        problems.append("issued differs from outstanding + redeemed + expired + donated + net transferred + adjusted")
    if sums.lot_points is not None and sums.lot_points + sums.pending_hold_lot_points != sums.user_balances_points:
        problems.append("user balances differ from points in lots plus pending holds")
    if sums.pending_hold_points != sums.pending_hold_lot_points or sums.user_held_points != sums.pending_hold_points:
        problems.append("held points differ from pending holds")
    if sums.journal_mismatches:
        problems.append(f"{sums.journal_mismatches} account balances differ from their journal entries")
    return Conservation(
        balanced=not problems,
        issued_points=issued,
        outstanding_points=sums.user_balances_points,
        redeemed_points=parts["redeemed"],
        expired_points=parts["expired"],
        donated_points=parts["donated"],
        net_transferred_points=parts["net_transferred"],
        adjusted_points=parts["adjusted"],
        sum_of_all_balances_points=total,
        problems=tuple(problems),
        full_audit=sums.full_audit,
    )
