"""The operations dashboard's figures, summed from what the services report per region (no I/O here).

Each region's ledger gives its books' totals (issued, outstanding, redeemed, expired, donated) and its ingest gives
events, points and grams of CO2e by day and behaviour; the dashboard adds them up nationally, by day, by behaviour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BOOK_FIGURES = ("issued_points", "outstanding_points", "redeemed_points", "expired_points", "donated_points")
ACTIVITY_FIGURES = ("events", "points", "co2e_grams")


@dataclass
class RegionFigures:
    """One region: its books (all time) and the statistics rows of the period asked for."""

    region_code: str
    name_zh: str
    name_en: str
    books: Mapping[str, int]
    rows: Sequence[Mapping[str, Any]] = field(default_factory=list)


def _sum_rows(rows: Iterable[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(ACTIVITY_FIGURES, 0))
    for row in rows:
        for figure in ACTIVITY_FIGURES:
            totals[str(row[key])][figure] += int(row[figure])
    return [{key: name, **figures} for name, figures in sorted(totals.items())]


def summarise(regions: list[RegionFigures]) -> dict[str, Any]:
    """National totals, one line per region, and the period's activity by day and by behaviour."""
    all_rows = [row for region in regions for row in region.rows]
    by_region: list[dict[str, Any]] = []
    for region in regions:
        activity = dict.fromkeys(ACTIVITY_FIGURES, 0)
        for row in region.rows:
            for figure in ACTIVITY_FIGURES:
                activity[figure] += int(row[figure])
        books = {figure: int(region.books.get(figure, 0)) for figure in BOOK_FIGURES}
        names = {"name_zh": region.name_zh, "name_en": region.name_en}
        by_region.append({"region_code": region.region_code, **names, **books, **activity})
    national = {figure: sum(int(line[figure]) for line in by_region) for figure in BOOK_FIGURES + ACTIVITY_FIGURES}
    return {
        "national": national,
        "by_region": by_region,
        "by_day": _sum_rows(all_rows, "day"),
        "by_behaviour": _sum_rows(all_rows, "behaviour"),
    }
