"""The behaviour catalog and its rule versions: synced from the reviewed file at start, extended by staff (never
retroactively), and served to submissions as a cached rule book
(docs/adr/0400-behaviour-catalog-and-rule-versions.md)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import Engine

from ingest_svc.domain.catalog import Catalog
from ingest_svc.domain.rules import Behaviour, RuleBook, RuleVersion
from ingest_svc.store import rules as stored
from service_kit.clock import Clock
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument

RULEBOOK_TTL_S = 30.0


class Rules:
    """The rule book, loaded from the database and cached (reloaded after a change here or every 30 s)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._book: RuleBook | None = None
        self._loaded_at = 0.0

    def sync_catalog(self, catalog: Catalog) -> None:
        """Loads the reviewed file: new behaviours and versions are added; a changed existing version is an error."""
        now = self._clock()
        with self._engine.begin() as conn:
            stored.insert_behaviours_if_missing(conn, catalog.behaviours)
            for rule in catalog.rules:
                if not stored.insert_rule_if_missing(conn, rule, now):
                    existing = stored.rule_by_id(conn, rule.rule_version_id)
                    if existing is not None and not existing.same_terms(rule):
                        raise FailedPrecondition(
                            "CATALOG_VERSION_CHANGED",
                            f"catalog: {rule.rule_version_id} differs from the loaded version; add a new version",
                        )
        self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._book = None

    def book(self) -> RuleBook:
        with self._lock:
            if self._book is None or time.monotonic() - self._loaded_at > RULEBOOK_TTL_S:
                with self._engine.connect() as conn:
                    self._book = RuleBook(stored.all_behaviours(conn), stored.all_rules(conn))
                self._loaded_at = time.monotonic()
            return self._book

    def by_id(self, rule_version_id: str) -> RuleVersion | None:
        with self._engine.connect() as conn:
            return stored.rule_by_id(conn, rule_version_id)

    def behaviours(self, region_code: str) -> list[Behaviour]:
        return [
            b
            for b in sorted(self.book().behaviours.values(), key=lambda b: (b.region_code, b.code))
            if not b.region_code or b.region_code == region_code
        ]

    def in_force(self, behaviour: str, region_code: str) -> list[RuleVersion]:
        """Per behaviour (the one named, or each one offered in the region), the version that would score an event
        happening now in the region: its own version, else the national one."""
        if not region_code:
            raise InvalidArgument("region_code", "is required with in_force")
        book, now = self.book(), self._clock()
        codes = [behaviour] if behaviour else sorted(b.code for b in self.behaviours(region_code))
        found = (book.rule_for(code, region_code, now) for code in codes)
        return [rule for rule in found if rule is not None]

    def create(self, rule: RuleVersion) -> RuleVersion:
        """Adds a version effective from now or later. Repeating the same version returns it; a different body errs."""
        self._check_new(rule)
        with self._engine.begin() as conn:
            if not stored.insert_rule_if_missing(conn, rule, self._clock()):
                existing = stored.rule_by_id(conn, rule.rule_version_id)
                assert existing is not None
                if not existing.same_terms(rule):
                    raise AlreadyExists("RULE_VERSION_EXISTS", f"rule: {rule.rule_version_id} exists with other terms")
                rule = existing
        self._invalidate()
        return rule

    def _check_new(self, rule: RuleVersion) -> None:
        """A new version's fields, each refusal naming the field."""
        behaviour = self.book().behaviours.get(rule.behaviour)
        if behaviour is None:
            raise InvalidArgument("rule.behaviour", f"unknown behaviour {rule.behaviour!r}", reason="UNKNOWN_BEHAVIOUR")
        if behaviour.region_code and rule.region_code != behaviour.region_code:
            raise InvalidArgument("rule.region_code", f"{rule.behaviour} exists only in {behaviour.region_code}")
        if rule.region_code and (len(rule.region_code) != 6 or not rule.region_code.isdigit()):
            raise InvalidArgument("rule.region_code", "must be empty (national) or a 6-digit code")
        if rule.effective_from < self._clock() - timedelta(seconds=1):
            raise InvalidArgument(
                "rule.effective_from",
                "must not be in the past: scored events keep their rule",
                reason="RETROACTIVE_RULE",
            )
        for name in ("points_per_unit", "co2e_milligrams_per_unit", "daily_cap_milli", "max_quantity_milli"):
            if getattr(rule, name) < 0:
                raise InvalidArgument(f"rule.{name}", "must not be negative")
        if behaviour.tiered != bool(rule.tier_points):
            raise InvalidArgument("rule.tier_points", "required exactly for tiered behaviours", reason="INVALID_TIER")
        if not rule.co2e_source.strip():
            raise InvalidArgument("rule.co2e_source", "cite the public source of the CO2e factor")

    def versions(self, behaviour: str, region_code: str) -> list[RuleVersion]:
        with self._engine.connect() as conn:
            everything = stored.all_rules(conn)
        return [
            r
            for r in everything
            if (not behaviour or r.behaviour == behaviour) and (not region_code or r.region_code == region_code)
        ]
