"""The operations dashboard: national totals, each region's books, the period's activity by day and behaviour."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ops_api.problems import invalid
from ops_api.routes.dependencies import Ctx, CurrentStaff
from ops_api.service.dashboard import dashboard

router = APIRouter(prefix="/v1", tags=["dashboard"])
MAX_DAYS = 366


class Totals(BaseModel):
    issued_points: int = Field(description="points ever issued (the ledger's books, all time)")
    outstanding_points: int = Field(description="points residents hold now")
    redeemed_points: int = Field(description="points spent on rewards, all time")
    expired_points: int = Field(description="points that expired, all time")
    donated_points: int = Field(description="points donated to charity projects, all time")
    events: int = Field(description="events scored in the period")
    points: int = Field(description="points those events earned")
    co2e_grams: int = Field(description="grams of CO2e those events avoided")


class RegionTotals(Totals):
    region_code: str
    name_zh: str
    name_en: str


class Activity(BaseModel):
    events: int
    points: int
    co2e_grams: int


class DayActivity(Activity):
    day: str = Field(description="YYYY-MM-DD, China Standard Time")


class BehaviourActivity(Activity):
    behaviour: str


class Dashboard(BaseModel):
    from_day: str
    to_day: str
    national: Totals
    by_region: list[RegionTotals]
    by_day: list[DayActivity]
    by_behaviour: list[BehaviourActivity]


@router.get("/dashboard", summary="National and regional totals; the period's points and CO2e by day and behaviour")
def get_dashboard(context: Ctx, staff: CurrentStaff, from_day: date, to_day: date) -> Dashboard:
    if to_day < from_day:
        raise invalid("to_day", "must not be before from_day")
    if (to_day - from_day).days > MAX_DAYS:
        raise invalid("to_day", f"at most {MAX_DAYS} days per query")
    return Dashboard.model_validate(dashboard(context, staff, from_day, to_day))
