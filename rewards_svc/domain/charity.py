"""Charity projects: points donated in whole units of impact (1,000 points = one tree planted)."""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.errors import InvalidArgument


class DonationState:
    """A donation is PENDING until the ledger posts its transfer, then COMPLETED (impact counted) or FAILED."""

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CharityProject:
    project_id: str
    name_en: str
    name_zh: str
    points_per_unit: int
    impact_unit: str
    units_region: int = 0
    donated_points_region: int = 0


@dataclass(frozen=True)
class Donation:
    donation_id: str
    project: CharityProject
    units: int


def donation_units(project: CharityProject, amount_points: int) -> int:
    if amount_points <= 0 or amount_points % project.points_per_unit:
        raise InvalidArgument(
            "amount_points",
            f"a positive multiple of {project.points_per_unit} ({project.points_per_unit} points = 1 "
            f"{project.impact_unit})",
        )
    return amount_points // project.points_per_unit


def donation_transfer_id(donation_id: str) -> str:
    return f"rewards:donate:{donation_id}"
