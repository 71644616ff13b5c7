"""The dashboard's sums: national totals of the books and the period's activity, by region, day and behaviour."""

from __future__ import annotations

from ops_api.domain.dashboard import RegionFigures, summarise

BOOKS_ZJ = {"issued_points": 900, "outstanding_points": 500, "redeemed_points": 300, "expired_points": 60,
            "donated_points": 40}  # fmt: skip
BOOKS_BJ = {"issued_points": 100, "outstanding_points": 100, "redeemed_points": 0, "expired_points": 0,
            "donated_points": 0}  # fmt: skip


def row(day: str, behaviour: str, points: int, grams: int) -> dict[str, object]:
    return {"day": day, "behaviour": behaviour, "events": 1, "points": points, "co2e_grams": grams}


def test_regions_add_up_to_national_totals_and_rows_group_by_day_and_behaviour() -> None:
    zhejiang = RegionFigures("330000", "浙江", "Zhejiang", BOOKS_ZJ, [
        row("2026-12-01", "tree_planting", 200, 0), row("2026-12-02", "metro_ride", 30, 120),
    ])  # fmt: skip
    beijing = RegionFigures("110000", "北京", "Beijing", BOOKS_BJ, [row("2026-12-02", "metro_ride", 10, 40)])
    summary = summarise([zhejiang, beijing])
    assert summary["national"] == {
        "issued_points": 1000, "outstanding_points": 600, "redeemed_points": 300, "expired_points": 60,
        "donated_points": 40, "events": 3, "points": 240, "co2e_grams": 160,
    }  # fmt: skip
    assert [line["region_code"] for line in summary["by_region"]] == ["330000", "110000"]
    assert summary["by_region"][0]["points"] == 230 and summary["by_region"][0]["name_zh"] == "浙江"
    assert summary["by_day"] == [
        {"day": "2026-12-01", "events": 1, "points": 200, "co2e_grams": 0},
        {"day": "2026-12-02", "events": 2, "points": 40, "co2e_grams": 160},
    ]
    assert [(b["behaviour"], b["points"]) for b in summary["by_behaviour"]] == [
        ("metro_ride", 40),
        ("tree_planting", 200),
    ]


def test_a_region_without_activity_still_shows_its_books() -> None:
    summary = summarise([RegionFigures("110000", "北京", "Beijing", BOOKS_BJ)])
    assert summary["by_region"][0]["issued_points"] == 100 and summary["by_region"][0]["events"] == 0
    assert summary["by_day"] == [] and summary["by_behaviour"] == []
