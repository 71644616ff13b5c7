"""The reviewed behaviour catalog (catalog.yaml, beside this module) as behaviours, rule versions and the acceptance
window, every entry checked. Reading the file is the only I/O; the checks are plain functions of its content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from ingest_svc.domain.events import Acceptance
from ingest_svc.domain.fingerprints import FingerprintError, FingerprintSpec
from ingest_svc.domain.rules import MILLI, Behaviour, RuleVersion

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
CATEGORIES = {
    "TRANSIT",
    "CYCLING",
    "EV_CHARGING",
    "FOOD_DELIVERY",
    "SHOPPING",
    "GARBAGE_SORTING",
    "COMMUNITY_ACTIVITY",
    "UTILITIES",
}


class CatalogError(ValueError):
    """The catalog file is wrong; the message names the entry and the field."""


@dataclass(frozen=True)
class Catalog:
    behaviours: list[Behaviour]
    rules: list[RuleVersion]
    acceptance: Acceptance
    # Each behaviour's activity fingerprint, by code (docs/adr/0412-activity-fingerprints.md).
    fingerprints: dict[str, FingerprintSpec]


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping at the top")
    return parse_catalog(raw)


def parse_catalog(raw: dict[str, Any]) -> Catalog:
    """The catalog's content (the YAML document as a mapping), checked entry by entry."""
    acceptance = raw.get("acceptance") or {}
    behaviours: list[Behaviour] = []
    rules: list[RuleVersion] = []
    fingerprints: dict[str, FingerprintSpec] = {}
    for entry in raw.get("behaviours", []):
        behaviour = _behaviour(entry, region_code="")
        behaviours.append(behaviour)
        rules.extend(_versions(entry, behaviour, ""))
        fingerprints[behaviour.code] = _fingerprint(entry, behaviour.code)
    for entry in raw.get("regional_behaviours", []):
        region = str(entry.get("region_code", ""))
        behaviour = _behaviour(entry, region_code=region)
        behaviours.append(behaviour)
        rules.extend(_versions(entry, behaviour, region))
        fingerprints[behaviour.code] = _fingerprint(entry, behaviour.code)
    by_code = {b.code: b for b in behaviours}
    if len(by_code) != len(behaviours):
        raise CatalogError("behaviour codes must be unique")
    for entry in raw.get("regional_overrides", []):
        code = str(entry.get("code"))
        if code not in by_code:
            raise CatalogError(f"regional override for unknown behaviour {code!r}")
        rules.extend(_versions(entry, by_code[code], str(entry.get("region_code", ""))))
    return Catalog(
        behaviours=behaviours,
        rules=rules,
        acceptance=Acceptance(
            window=timedelta(days=int(acceptance.get("window_days", 7))),
            future_skew=timedelta(seconds=int(acceptance.get("future_skew_seconds", 300))),
            counter_window=timedelta(days=int(acceptance.get("counter_window_days", 31))),
        ),
        fingerprints=fingerprints,
    )


def _fingerprint(entry: dict[str, Any], code: str) -> FingerprintSpec:
    """A behaviour's reviewed fingerprint: required, so no behaviour goes unclaimed by oversight."""
    raw = entry.get("fingerprint")
    if not isinstance(raw, dict):
        raise CatalogError(f"behaviour {code!r}: fingerprint (fields, fallback) is required")
    try:
        return FingerprintSpec(
            tuple(str(f) for f in raw.get("fields") or ()), tuple(str(f) for f in raw.get("fallback") or ())
        )
    except FingerprintError as error:
        raise CatalogError(f"behaviour {code!r}: {error}") from None


def _behaviour(entry: dict[str, Any], region_code: str) -> Behaviour:
    code = str(entry.get("code", ""))
    for name in ("code", "name_en", "name_zh", "unit", "category"):
        if not entry.get(name):
            raise CatalogError(f"behaviour {code!r}: {name} is required")
    if entry["category"] not in CATEGORIES:
        raise CatalogError(f"behaviour {code!r}: category {entry['category']!r} is not a DataCategory")
    if region_code and (len(region_code) != 6 or not region_code.isdigit()):
        raise CatalogError(f"behaviour {code!r}: region_code must be 6 digits")
    return Behaviour(
        code=code,
        name_en=str(entry["name_en"]),
        name_zh=str(entry["name_zh"]),
        unit=str(entry["unit"]),
        category=str(entry["category"]),
        region_code=region_code,
        tiered=bool(entry.get("tiered", False)),
    )


def _versions(entry: dict[str, Any], behaviour: Behaviour, region_code: str) -> list[RuleVersion]:
    where = f"behaviour {behaviour.code!r} ({region_code or 'national'})"
    versions = entry.get("versions") or []
    if not versions:
        raise CatalogError(f"{where}: at least one version is required")
    out = []
    for version in versions:
        effective = version.get("effective_from")
        try:
            effective_from = datetime.fromisoformat(str(effective))
        except ValueError:
            raise CatalogError(f"{where}: effective_from {effective!r} is not an ISO 8601 time") from None
        if effective_from.tzinfo is None:
            raise CatalogError(f"{where}: effective_from needs a UTC offset")
        co2e = version.get("co2e") or {}
        for name in ("grams_per_unit", "unit", "source"):
            if co2e.get(name) in (None, ""):
                raise CatalogError(f"{where}: co2e.{name} is required")
        if co2e.get("derived") and not co2e.get("derivation"):
            raise CatalogError(f"{where}: a derived co2e factor must show its derivation")
        tier_points = {str(k): int(v) for k, v in (version.get("tier_points") or {}).items()}
        if behaviour.tiered != bool(tier_points):
            raise CatalogError(f"{where}: tier_points are required exactly for tiered behaviours")
        out.append(
            RuleVersion(
                behaviour=behaviour.code,
                region_code=region_code,
                effective_from=effective_from,
                points_per_unit=int(version.get("points_per_unit", 0)),
                co2e_milligrams_per_unit=_thousandths(co2e["grams_per_unit"], f"{where}: co2e.grams_per_unit"),
                co2e_unit=str(co2e["unit"]),
                co2e_source=" ".join(str(co2e["source"]).split()),
                daily_cap_milli=_thousandths(version.get("daily_cap", 0), f"{where}: daily_cap"),
                max_quantity_milli=_thousandths(version.get("max_per_event", 0), f"{where}: max_per_event"),
                tier_points=tier_points,
                co2e_derivation=" ".join(str(co2e.get("derivation", "")).split()),
            )
        )
    return out


def _thousandths(value: object, where: str) -> int:
    """An exact decimal (at most three places) as an integer number of thousandths; no float on the way."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise CatalogError(f"{where}: {value!r} is not a number") from None
    scaled = number * MILLI
    if number < 0 or scaled != scaled.to_integral_value():
        raise CatalogError(f"{where}: {value!r} must be non-negative with at most three decimals")
    return int(scaled)
