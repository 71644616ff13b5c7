"""Behaviours and rule versions as stored: inserted once, never edited (a changed version is a new one)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ingest_svc.domain.rules import Behaviour, RuleVersion
from ingest_svc.store.dialect import insert, utc
from ingest_svc.store.tables import behaviours, rule_versions


def insert_behaviours_if_missing(conn: Connection, new: Iterable[Behaviour]) -> None:
    rows = [
        {
            "code": b.code,
            "name_en": b.name_en,
            "name_zh": b.name_zh,
            "unit": b.unit,
            "category": b.category,
            "region_code": b.region_code,
            "tiered": b.tiered,
        }
        for b in new
    ]
    if rows:
        conn.execute(insert(conn, behaviours).on_conflict_do_nothing(), rows)


def all_behaviours(conn: Connection) -> list[Behaviour]:
    query = select(behaviours).order_by(behaviours.c.code)
    return [
        Behaviour(r.code, r.name_en, r.name_zh, r.unit, r.category, r.region_code, r.tiered)
        for r in conn.execute(query)
    ]


def insert_rule_if_missing(conn: Connection, rule: RuleVersion, now: datetime) -> bool:
    """False when a version with this id exists already (nothing written)."""
    statement = insert(conn, rule_versions).on_conflict_do_nothing().returning(rule_versions.c.rule_version_id)
    return conn.execute(statement, [_row(rule, now)]).first() is not None


def rule_by_id(conn: Connection, rule_version_id: str) -> RuleVersion | None:
    row = conn.execute(select(rule_versions).where(rule_versions.c.rule_version_id == rule_version_id)).first()
    return _rule(row._mapping) if row else None


def all_rules(conn: Connection) -> list[RuleVersion]:
    query = select(rule_versions).order_by(
        rule_versions.c.behaviour, rule_versions.c.region_code, rule_versions.c.effective_from
    )
    return [_rule(row._mapping) for row in conn.execute(query)]


def _row(rule: RuleVersion, now: datetime) -> dict[str, Any]:
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


def _rule(row: Any) -> RuleVersion:
    return RuleVersion(
        behaviour=row["behaviour"],
        region_code=row["region_code"],
        effective_from=utc(row["effective_from"]),
        points_per_unit=row["points_per_unit"],
        co2e_milligrams_per_unit=row["co2e_milligrams_per_unit"],
        co2e_unit=row["co2e_unit"],
        co2e_source=row["co2e_source"],
        daily_cap_milli=row["daily_cap_milli"],
        max_quantity_milli=row["max_quantity_milli"],
        tier_points=json.loads(row["tier_points"]),
        co2e_derivation=row["co2e_derivation"],
    )
