"""Reads the reviewed seed catalog (seed_catalog.yaml, beside this module) into rewards and charity projects,
checking every entry. Seeding adds what the database lacks and never overwrites (ops changes win)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from rewards_svc.domain.catalog import Reward, validate_reward
from rewards_svc.domain.charity import CharityProject
from service_kit.errors import InvalidArgument

CATALOG_PATH = Path(__file__).with_name("seed_catalog.yaml")


class CatalogError(ValueError):
    """The catalog file is wrong; the message names the entry and the field."""


@dataclass(frozen=True)
class SeedCatalog:
    rewards: list[Reward]
    projects: list[CharityProject]


def _moment(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise CatalogError(f"{where}: give the time zone, e.g. +08:00")
    return moment.astimezone(UTC)


def _reward(entry: dict[str, Any], defaults: dict[str, Any]) -> Reward:
    raw = {**defaults, **entry}
    where = f"reward {raw.get('reward_id', '?')}"
    try:
        reward = Reward(
            reward_id=str(raw["reward_id"]),
            name_en=str(raw["name_en"]),
            name_zh=str(raw.get("name_zh", "")),
            category=str(raw["category"]),
            price_points=int(raw["price_points"]),
            face_value_cents=int(raw["face_value_cents"]),
            provider=str(raw["provider"]),
            region_codes=tuple(str(code) for code in raw.get("region_codes") or ()),
            stock=int(raw["stock"]),
            limit_per_day=int(raw["limit_per_day"]),
            limit_per_month=int(raw["limit_per_month"]),
            limit_lifetime=int(raw["limit_lifetime"]),
            available_from=_moment(raw.get("available_from"), where),
            available_until=_moment(raw.get("available_until"), where),
            voucher_lifetime_days=int(raw["voucher_lifetime_days"]),
            divisible=bool(raw.get("divisible", False)),
            terms=str(raw.get("terms", "")),
        )
        validate_reward(reward)
    except KeyError as missing:
        raise CatalogError(f"{where}: missing {missing}") from None
    except InvalidArgument as error:
        raise CatalogError(f"{where}: {error.message}") from None
    return reward


def _project(entry: dict[str, Any]) -> CharityProject:
    where = f"charity project {entry.get('project_id', '?')}"
    try:
        project = CharityProject(
            project_id=str(entry["project_id"]),
            name_en=str(entry["name_en"]),
            name_zh=str(entry.get("name_zh", "")),
            points_per_unit=int(entry["points_per_unit"]),
            impact_unit=str(entry["impact_unit"]),
        )
    except KeyError as missing:
        raise CatalogError(f"{where}: missing {missing}") from None
    if project.points_per_unit <= 0:
        raise CatalogError(f"{where}: points_per_unit must be positive")
    return project


def load_catalog(path: Path = CATALOG_PATH) -> SeedCatalog:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping at the top")
    defaults = raw.get("defaults") or {}
    rewards = [_reward(entry, defaults) for entry in raw.get("rewards") or []]
    projects = [_project(entry) for entry in raw.get("charity_projects") or []]
    for kind, ids in (("reward", [r.reward_id for r in rewards]), ("project", [p.project_id for p in projects])):
        duplicates = sorted({item for item in ids if ids.count(item) > 1})
        if duplicates:
            raise CatalogError(f"{path}: {kind} ids appear twice: {', '.join(duplicates)}")
    return SeedCatalog(rewards=rewards, projects=projects)
