"""Use cases around the catalog and partners: rules (versioned, cached), partner registry and keys, statistics."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from ingest_svc import store
from ingest_svc.catalog import Catalog
from ingest_svc.domain.partners import KINDS, PARTNER_ID_PATTERN, Partner, PartnerKey
from ingest_svc.domain.rules import Behaviour, RuleBook, RuleVersion
from ingest_svc.secret_box import SecretBox
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

log = logging.getLogger("carbon.ingest")

__all__ = ["Partner", "Partners", "RuleVersion", "Rules"]

RULEBOOK_TTL_S = 30.0
# Partners and their decrypted keys are cached per process. A key or partner unknown to the cache is looked up again
# before a batch is refused, so a key rotated by another replica works at once; deactivation lags at most this long.
PARTNER_CACHE_TTL_S = 5.0
BEHAVIOUR_FIELDS = ("code", "name_en", "name_zh", "unit", "category", "region_code", "tiered")
MAX_PAGE = 500


def _rule_row(rule: RuleVersion, now: datetime) -> dict[str, Any]:
    return {
        "rule_version_id": rule.rule_version_id,
        "behaviour": rule.behaviour,
        "region_code": rule.region_code,
        "effective_from": rule.effective_from.astimezone(UTC),
        "points_per_unit": rule.points_per_unit,
        "co2e_milligrams_per_unit": rule.co2e_milligrams_per_unit,
        "co2e_unit": rule.co2e_unit,
        "co2e_source": rule.co2e_source,
        "co2e_derivation": rule.co2e_derivation,
        "daily_cap_milli": rule.daily_cap_milli,
        "max_quantity_milli": rule.max_quantity_milli,
        "tier_points": json.dumps(dict(sorted(rule.tier_points.items()))),
        "created_at": now.astimezone(UTC),
    }


def _rule(row: dict[str, Any]) -> RuleVersion:
    return RuleVersion(
        behaviour=row["behaviour"],
        region_code=row["region_code"],
        effective_from=store.utc(row["effective_from"]),
        points_per_unit=row["points_per_unit"],
        co2e_milligrams_per_unit=row["co2e_milligrams_per_unit"],
        co2e_unit=row["co2e_unit"],
        co2e_source=row["co2e_source"],
        daily_cap_milli=row["daily_cap_milli"],
        max_quantity_milli=row["max_quantity_milli"],
        tier_points=json.loads(row["tier_points"]),
        co2e_derivation=row["co2e_derivation"],
    )


class Rules:
    """The rule book, loaded from the database and cached (reloaded after a change here or every 30 s)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._book: RuleBook | None = None
        self._loaded_at = 0.0

    def sync_catalog(self, catalog: Catalog) -> None:
        """Loads the reviewed file: new behaviours and versions are added; a changed existing version is an error."""
        now = self._clock()
        with self._engine.begin() as conn:
            store.insert_behaviours_if_missing(
                conn,
                [
                    {
                        "code": b.code,
                        "name_en": b.name_en,
                        "name_zh": b.name_zh,
                        "unit": b.unit,
                        "category": b.category,
                        "region_code": b.region_code,
                        "tiered": b.tiered,
                    }
                    for b in catalog.behaviours
                ],
            )
            for rule in catalog.rules:
                if not store.insert_rule_if_missing(conn, _rule_row(rule, now)):
                    stored = store.rule_by_id(conn, rule.rule_version_id)
                    if stored is not None and not _rule(stored).same_terms(rule):
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
                    behaviours = [
                        Behaviour(
                            r["code"],
                            r["name_en"],
                            r["name_zh"],
                            r["unit"],
                            r["category"],
                            r["region_code"],
                            r["tiered"],
                        )
                        for r in store.all_behaviours(conn)
                    ]
                    rules = [_rule(r) for r in store.all_rules(conn)]
                self._book = RuleBook(behaviours, rules)
                self._loaded_at = time.monotonic()
            return self._book

    def by_id(self, rule_version_id: str) -> RuleVersion | None:
        with self._engine.connect() as conn:
            row = store.rule_by_id(conn, rule_version_id)
        return _rule(row) if row else None

    def behaviours(self, region_code: str) -> list[Behaviour]:
        return [
            b
            for b in sorted(self.book().behaviours.values(), key=lambda b: (b.region_code, b.code))
            if not b.region_code or b.region_code == region_code
        ]

    def create(self, rule: RuleVersion) -> RuleVersion:
        """Adds a version effective from now or later. Repeating the same version returns it; a different body errs."""
        book = self.book()
        behaviour = book.behaviours.get(rule.behaviour)
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
        with self._engine.begin() as conn:
            if not store.insert_rule_if_missing(conn, _rule_row(rule, self._clock())):
                stored = store.rule_by_id(conn, rule.rule_version_id)
                assert stored is not None
                if not _rule(stored).same_terms(rule):
                    raise AlreadyExists("RULE_VERSION_EXISTS", f"rule: {rule.rule_version_id} exists with other terms")
                rule = _rule(stored)
        self._invalidate()
        return rule

    def versions(self, behaviour: str, region_code: str) -> list[RuleVersion]:
        with self._engine.connect() as conn:
            rows = store.all_rules(conn)
        return [
            _rule(r)
            for r in rows
            if (not behaviour or r["behaviour"] == behaviour) and (not region_code or r["region_code"] == region_code)
        ]

    def statistics(
        self, region_code: str, from_day: date | None, to_day: date | None, behaviour: str
    ) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return store.statistics(conn, region_code, from_day, to_day, behaviour)


def _partner(row: dict[str, Any]) -> Partner:
    return Partner(
        partner_id=row["partner_id"],
        name=row["name"],
        kind=row["kind"],
        allowed_behaviours=tuple(json.loads(row["allowed_behaviours"])),
        allowed_regions=tuple(json.loads(row["allowed_regions"])),
        rate_limit_per_second=row["rate_limit_per_second"],
        active_key_id=row["active_key_id"],
        active=bool(row["active"]),
    )


class Partners:
    def __init__(
        self, engine: Engine, box: SecretBox, clock: Callable[[], datetime], grace: timedelta = timedelta(hours=24)
    ) -> None:
        self._engine = engine
        self._box = box
        self._clock = clock
        self._grace = grace
        self._cache: dict[str, tuple[float, Partner, list[PartnerKey]]] = {}
        self._cache_lock = threading.Lock()

    def _forget(self, partner_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(partner_id, None)

    def register(self, request_id: str, partner: Partner, known_behaviours: set[str]) -> tuple[Partner, str]:
        """Returns the partner and its first secret; a retry with the same request id returns the same pair."""
        if not request_id:
            raise InvalidArgument("request_id", "required (idempotency key)")
        if not PARTNER_ID_PATTERN.match(partner.partner_id):
            raise InvalidArgument("partner.partner_id", "2-64 of a-z 0-9 _ . - starting with a letter or digit")
        if partner.kind not in KINDS:
            raise InvalidArgument("partner.kind", "required")
        if not partner.name.strip():
            raise InvalidArgument("partner.name", "required")
        unknown = sorted(set(partner.allowed_behaviours) - known_behaviours)
        if not partner.allowed_behaviours or unknown:
            raise InvalidArgument("partner.allowed_behaviours", f"at least one known behaviour (unknown: {unknown})")
        bad_regions = [r for r in partner.allowed_regions if len(r) != 6 or not r.isdigit()]
        if not partner.allowed_regions or bad_regions:
            raise InvalidArgument("partner.allowed_regions", f"at least one 6-digit region code (bad: {bad_regions})")
        if partner.rate_limit_per_second < 0:
            raise InvalidArgument("partner.rate_limit_per_second", "must not be negative (0 = unlimited)")
        now = self._clock()
        secret = secrets.token_urlsafe(32)
        partner = replace(partner, active_key_id="k1", active=True)
        row = {
            "partner_id": partner.partner_id,
            "name": partner.name,
            "kind": partner.kind,
            "allowed_behaviours": json.dumps(sorted(set(partner.allowed_behaviours))),
            "allowed_regions": json.dumps(sorted(set(partner.allowed_regions))),
            "rate_limit_per_second": partner.rate_limit_per_second,
            "active_key_id": "k1",
            "active": True,
            "request_id": request_id,
            "created_at": now.astimezone(UTC),
        }
        key_row = {
            "partner_id": partner.partner_id,
            "key_id": "k1",
            "secret_ciphertext": self._box.seal(secret.encode(), f"{partner.partner_id}/k1"),
            "created_at": now.astimezone(UTC),
            "valid_until": None,
            "request_id": None,
        }
        with self._engine.begin() as conn:
            if store.insert_partner(conn, row, key_row):
                return _partner(row), secret
            existing = store.partner_row(conn, partner.partner_id)
            assert existing is not None
            if existing["request_id"] != request_id:
                raise AlreadyExists("PARTNER_EXISTS", f"partner_id: {partner.partner_id} is registered already")
            first = next(k for k in store.key_rows(conn, partner.partner_id) if k["key_id"] == "k1")
        return _partner(existing), self._box.open(first["secret_ciphertext"], f"{partner.partner_id}/k1").decode()

    def get(self, partner_id: str) -> Partner:
        with self._engine.connect() as conn:
            row = store.partner_row(conn, partner_id)
        if row is None:
            raise NotFound("PARTNER_NOT_FOUND", f"partner_id: {partner_id!r} is not registered")
        return _partner(row)

    def page(self, after: str, limit: int) -> list[Partner]:
        with self._engine.connect() as conn:
            return [_partner(r) for r in store.list_partner_rows(conn, after, max(1, min(limit, MAX_PAGE)))]

    def for_verification(self, partner_id: str, fresh: bool = False) -> tuple[Partner | None, list[PartnerKey]]:
        """The partner and its decrypted keys, from the cache unless `fresh` or older than PARTNER_CACHE_TTL_S."""
        if not fresh:
            with self._cache_lock:
                cached = self._cache.get(partner_id)
            if cached is not None and time.monotonic() - cached[0] < PARTNER_CACHE_TTL_S:
                return cached[1], cached[2]
        loaded_at = time.monotonic()
        partner, keys = self._load_for_verification(partner_id)
        if partner is not None:
            with self._cache_lock:
                self._cache[partner_id] = (loaded_at, partner, keys)
        return partner, keys

    def _load_for_verification(self, partner_id: str) -> tuple[Partner | None, list[PartnerKey]]:
        with self._engine.connect() as conn:
            row = store.partner_row(conn, partner_id)
            if row is None:
                return None, []
            keys = store.key_rows(conn, partner_id)
        return _partner(row), [
            PartnerKey(
                k["key_id"],
                self._box.open(k["secret_ciphertext"], f"{partner_id}/{k['key_id']}"),
                store.utc(k["created_at"]),
                store.utc(k["valid_until"]) if k["valid_until"] is not None else None,
            )
            for k in keys
        ]

    def rotate(self, request_id: str, partner_id: str) -> tuple[str, str, datetime]:
        """New active key; the previous one stays valid for the grace period. Idempotent per request id."""
        if not request_id:
            raise InvalidArgument("request_id", "required (idempotency key)")
        now = self._clock()
        with self._engine.begin() as conn:
            done = store.key_by_request(conn, request_id)
            if done is not None:
                if done["partner_id"] != partner_id:
                    raise AlreadyExists("REQUEST_ID_REUSED", "request_id: used for another partner")
                secret = self._box.open(done["secret_ciphertext"], f"{partner_id}/{done['key_id']}").decode()
                return done["key_id"], secret, store.utc(done["created_at"]) + self._grace
            row = store.partner_row(conn, partner_id)
            if row is None:
                raise NotFound("PARTNER_NOT_FOUND", f"partner_id: {partner_id!r} is not registered")
            key_id = f"k{len(store.key_rows(conn, partner_id)) + 1}"
            secret = secrets.token_urlsafe(32)
            store.rotate_key(
                conn,
                partner_id,
                {
                    "partner_id": partner_id,
                    "key_id": key_id,
                    "secret_ciphertext": self._box.seal(secret.encode(), f"{partner_id}/{key_id}"),
                    "created_at": now.astimezone(UTC),
                    "valid_until": None,
                    "request_id": request_id,
                },
                (now + self._grace).astimezone(UTC),
            )
        self._forget(partner_id)
        return key_id, secret, now + self._grace
