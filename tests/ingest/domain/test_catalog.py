"""The reviewed catalog holds every behaviour of DOMAIN.md with points, unit, CO2e factor and a cited source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest_svc.domain.catalog import CatalogError, load_catalog
from ingest_svc.domain.rules import RuleBook

# DOMAIN.md "Earning points": code -> (unit, points per unit or tier points, region).
DOMAIN_BEHAVIOURS: dict[str, tuple[str, object, str]] = {
    "transit_trip": ("trip", 10, ""),
    "bike_km": ("km", 3, ""),
    "ev_charging_kwh": ("kWh", 5, ""),
    "clean_plate": ("time", 8, ""),
    "green_appliance": ("item", {"tier_1": 50, "tier_2": 100, "tier_3": 150, "tier_4": 200}, ""),
    "reusable_bag": ("time", 5, ""),
    "garbage_sorting": ("time", 6, ""),
    "tree_planting": ("time", 200, ""),
    "sorting_supervisor_day": ("day", 50, ""),
    "water_governance_volunteer": ("time", 300, "330000"),
    "solar_water_heater_day": ("day", 10, "440300"),
    "recycling_kg": ("kg", 30, "440100"),
}
NOW = datetime(2026, 3, 15, tzinfo=UTC)


def test_every_domain_behaviour_is_in_the_catalog_with_unit_points_and_region() -> None:
    catalog = load_catalog()
    book = RuleBook(catalog.behaviours, catalog.rules)
    assert set(book.behaviours) == set(DOMAIN_BEHAVIOURS)
    for code, (unit, points, region) in DOMAIN_BEHAVIOURS.items():
        behaviour = book.behaviours[code]
        assert (behaviour.unit, behaviour.region_code) == (unit, region), code
        rule = book.rule_for(code, region or "110000", NOW)
        assert rule is not None, code
        if isinstance(points, dict):
            assert dict(rule.tier_points) == points
        else:
            assert rule.points_per_unit == points, code


def test_every_rule_cites_a_source_unit_and_shows_derivations() -> None:
    for rule in load_catalog().rules:
        assert rule.co2e_source.strip(), rule.rule_version_id
        assert rule.co2e_unit.strip(), rule.rule_version_id
        assert rule.co2e_milligrams_per_unit >= 0
        assert rule.daily_cap_milli > 0 and rule.max_quantity_milli > 0, "caps and plausibility are documented"


def test_published_factors_are_stored_exactly_in_milligrams() -> None:
    rules = {r.rule_version_id.split("@")[0]: r for r in load_catalog().rules if not r.region_code}
    assert rules["transit_trip"].co2e_milligrams_per_unit == 515_500
    assert rules["garbage_sorting"].co2e_milligrams_per_unit == 916_600
    assert rules["ev_charging_kwh"].co2e_milligrams_per_unit == 523_600


def test_a_regional_override_wins_in_its_region_from_its_date() -> None:
    catalog = load_catalog()
    book = RuleBook(catalog.behaviours, catalog.rules)
    shenzhen = book.rule_for("bike_km", "440300", NOW)
    assert shenzhen is not None and shenzhen.region_code == "440300" and shenzhen.daily_cap_milli == 20_000
    before = book.rule_for("bike_km", "440300", datetime(2023, 6, 1, tzinfo=UTC))
    assert before is not None and before.region_code == ""


def test_regional_extras_are_offered_only_in_their_region() -> None:
    catalog = load_catalog()
    book = RuleBook(catalog.behaviours, catalog.rules)
    assert book.behaviour_in_region("water_governance_volunteer", "330000") is not None
    assert book.behaviour_in_region("water_governance_volunteer", "110000") is None


def _catalog_of_one(tmp_path: Path, co2e: str) -> Path:
    """A catalog file with one national behaviour whose only version has the given co2e mapping."""
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"""
behaviours:
  - code: x
    name_en: X
    name_zh: X
    unit: time
    category: TRANSIT
    versions:
      - effective_from: "2023-01-01T00:00:00+08:00"
        points_per_unit: 1
        co2e: {co2e}
""",
        encoding="utf-8",
    )
    return path


def test_a_derived_factor_without_derivation_is_refused(tmp_path: Path) -> None:
    path = _catalog_of_one(tmp_path, '{grams_per_unit: "1.5", unit: g, source: s, derived: true}')
    with pytest.raises(CatalogError, match="derivation"):
        load_catalog(path)


def test_a_factor_with_more_than_three_decimals_is_refused(tmp_path: Path) -> None:
    path = _catalog_of_one(tmp_path, '{grams_per_unit: "1.0005", unit: g, source: s}')
    with pytest.raises(CatalogError, match="three decimals"):
        load_catalog(path)
