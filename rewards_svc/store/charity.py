"""Queries on charity: projects, their impact counters per region, donations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from rewards_svc.domain.charity import CharityProject, DonationState
from rewards_svc.store.tables import donation_table, impact_table, insert_ignore, project_table


def add_missing_projects(connection: Connection, items: Sequence[CharityProject]) -> int:
    rows = [
        {
            "project_id": project.project_id,
            "name_en": project.name_en,
            "name_zh": project.name_zh,
            "points_per_unit": project.points_per_unit,
            "impact_unit": project.impact_unit,
        }
        for project in items
    ]
    return insert_ignore(connection, project_table, rows)


def list_projects(connection: Connection, region_code: str, project_id: str = "") -> list[CharityProject]:
    impact = impact_table.alias("impact")
    query = (
        select(project_table, impact.c.units, impact.c.donated_points)
        .outerjoin(impact, and_(impact.c.project_id == project_table.c.project_id, impact.c.region_code == region_code))
        .order_by(project_table.c.project_id)
    )
    if project_id:
        query = query.where(project_table.c.project_id == project_id)
    return [
        CharityProject(
            project_id=row.project_id,
            name_en=row.name_en,
            name_zh=row.name_zh,
            points_per_unit=row.points_per_unit,
            impact_unit=row.impact_unit,
            units_region=row.units or 0,
            donated_points_region=row.donated_points or 0,
        )
        for row in connection.execute(query)
    ]


def insert_donation(connection: Connection, **values: Any) -> None:
    connection.execute(insert(donation_table).values(**values))


def get_donation(connection: Connection, *, donation_id: str = "", request_id: str = "") -> Any:
    column = donation_table.c.donation_id if donation_id else donation_table.c.request_id
    return connection.execute(select(donation_table).where(column == (donation_id or request_id))).first()


def set_donation_state(connection: Connection, donation_id: str, to_state: str, reason: str = "") -> bool:
    result = connection.execute(
        update(donation_table)
        .where(and_(donation_table.c.donation_id == donation_id, donation_table.c.state == DonationState.PENDING))
        .values(state=to_state, failure_reason=reason)
    )
    return result.rowcount == 1


def add_impact(connection: Connection, project_id: str, region_code: str, units: int, points: int) -> None:
    insert_ignore(
        connection,
        impact_table,
        [{"project_id": project_id, "region_code": region_code, "units": 0, "donated_points": 0}],
    )
    connection.execute(
        update(impact_table)
        .where(and_(impact_table.c.project_id == project_id, impact_table.c.region_code == region_code))
        .values(units=impact_table.c.units + units, donated_points=impact_table.c.donated_points + points)
    )


def pending_donation_ids(connection: Connection, limit: int) -> list[str]:
    query = select(donation_table.c.donation_id).where(donation_table.c.state == DonationState.PENDING).limit(limit)
    return list(connection.execute(query).scalars())


def month_donations(
    connection: Connection, region_code: str, start: datetime, end: datetime
) -> dict[str, tuple[int, int]]:
    """Per project: units and points of the region's completed donations asked for in [start, end)."""
    query = (
        select(
            donation_table.c.project_id,
            func.sum(donation_table.c.units).label("units"),
            func.sum(donation_table.c.amount_points).label("points"),
        )
        .where(
            donation_table.c.region_code == region_code,
            donation_table.c.state == DonationState.COMPLETED,
            donation_table.c.created_at >= start,
            donation_table.c.created_at < end,
        )
        .group_by(donation_table.c.project_id)
    )
    return {row.project_id: (int(row.units), int(row.points)) for row in connection.execute(query)}
