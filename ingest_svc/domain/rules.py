"""Behaviours and their versioned rules; which version scores an event (by when and where it happened)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

MILLI = 1000


@dataclass(frozen=True)
class Behaviour:
    code: str
    name_en: str
    name_zh: str
    unit: str
    # carbon.common.v1.DataCategory name without the prefix, e.g. "TRANSIT".
    category: str
    # "" for national behaviours; else the only region that offers it.
    region_code: str = ""
    tiered: bool = False


@dataclass(frozen=True)
class RuleVersion:
    """What one behaviour earns and avoids from `effective_from` on, nationally ("") or in one region."""

    behaviour: str
    region_code: str
    effective_from: datetime  # timezone-aware
    points_per_unit: int
    co2e_milligrams_per_unit: int
    co2e_unit: str
    co2e_source: str
    daily_cap_milli: int  # 0 = no cap
    max_quantity_milli: int  # 0 = no limit
    tier_points: Mapping[str, int] = field(default_factory=dict)
    co2e_derivation: str = ""

    @cached_property  # read for every scored event: formatted once per version, not per event
    def rule_version_id(self) -> str:
        """Stable id: behaviour, scope and start (UTC). One version per (behaviour, scope, start)."""
        scope = self.region_code or "national"
        return f"{self.behaviour}@{scope}@{self.effective_from.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"

    def same_terms(self, other: RuleVersion) -> bool:
        """True when two versions score identically (sources and wording may differ)."""
        return (
            self.rule_version_id == other.rule_version_id
            and self.points_per_unit == other.points_per_unit
            and self.co2e_milligrams_per_unit == other.co2e_milligrams_per_unit
            and self.daily_cap_milli == other.daily_cap_milli
            and self.max_quantity_milli == other.max_quantity_milli
            and dict(self.tier_points) == dict(other.tier_points)
        )

    def co2e_factor_text(self) -> str:
        grams, milligrams = divmod(self.co2e_milligrams_per_unit, 1000)
        decimals = f".{milligrams:03d}".rstrip("0").rstrip(".")
        return f"{grams}{decimals} {self.co2e_unit}"


class RuleBook:
    """All rule versions, indexed for selection. Immutable once built; rebuild when rules change."""

    def __init__(self, behaviours: Iterable[Behaviour], rules: Iterable[RuleVersion]) -> None:
        self.behaviours: dict[str, Behaviour] = {b.code: b for b in behaviours}
        self._rules: dict[tuple[str, str], list[RuleVersion]] = {}
        for rule in rules:
            self._rules.setdefault((rule.behaviour, rule.region_code), []).append(rule)
        for versions in self._rules.values():
            versions.sort(key=lambda r: r.effective_from)
        # Each list's starts, for a binary search per event instead of a walk over the versions.
        self._starts = {key: [r.effective_from for r in versions] for key, versions in self._rules.items()}

    def behaviour_in_region(self, code: str, region_code: str) -> Behaviour | None:
        """The behaviour if it is offered where the event happened (national ones everywhere)."""
        behaviour = self.behaviours.get(code)
        if behaviour is None or (behaviour.region_code and behaviour.region_code != region_code):
            return None
        return behaviour

    def rule_for(self, behaviour: str, region_code: str, occurred_at: datetime) -> RuleVersion | None:
        """The version in force when the event happened: a regional version wins over the national one."""
        for scope in (region_code, ""):
            starts = self._starts.get((behaviour, scope))
            if starts:
                # The last version starting at or before the event (of equal starts, the last, as a walk would pick).
                position = bisect_right(starts, occurred_at)
                if position:
                    return self._rules[(behaviour, scope)][position - 1]
        return None

    def all_rules(self) -> list[RuleVersion]:
        return [rule for versions in self._rules.values() for rule in versions]
