"""Daily statistics for staff: events, points and grams of CO2e per region, behaviour and CST day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from ingest_svc.domain.scoring import DailyTotal
from ingest_svc.store import statistics as stored


class Statistics:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def daily(self, region_code: str, from_day: date | None, to_day: date | None, behaviour: str) -> list[DailyTotal]:
        """Every filter optional ("" or None); ordered by day, region and behaviour."""
        with self._engine.connect() as conn:
            return stored.statistics(conn, region_code, from_day, to_day, behaviour)
