"""How points are earned: rule versions for admins only, data partners registered and rotated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops_api.ops_support import Ops


def test_rules_list_and_new_version_for_admins_only(ops: Ops) -> None:
    rules = ops.get("viewer", "/v1/regions/330000/rules", behaviour="tree_planting", national=True).json()["rules"]
    assert rules and rules[0]["behaviour"] == "tree_planting"
    body = {
        "behaviour": "tree_planting",
        "effective_from": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "points_per_unit": 220,
        "co2e_milligrams_per_unit": 1_000_000,
        "co2e_source": "provincial method 2026",
    }
    assert ops.post("op1", "/v1/regions/330000/rules", body).status_code == 403
    created = ops.post("admin", "/v1/regions/330000/rules", body)
    assert created.status_code == 201, created.text
    assert created.json()["rule"]["points_per_unit"] == 220
    behaviours = ops.get("viewer", "/v1/regions/330000/behaviours").json()["behaviours"]
    assert "tree_planting" in {b["code"] for b in behaviours}


def test_partner_register_get_rotate(ops: Ops) -> None:
    body = {"partner_id": "hz-metro", "name": "Hangzhou Metro", "kind": "TRANSIT_OPERATOR",
            "allowed_behaviours": ["transit_trip"], "allowed_regions": ["330000"]}  # fmt: skip
    registered = ops.post("admin", "/v1/regions/330000/partners", body)
    assert registered.status_code == 201, registered.text and registered.json()["secret"]
    assert ops.get("op1", "/v1/regions/330000/partners/hz-metro").json()["partner"]["name"] == "Hangzhou Metro"
    rotated = ops.post("admin", "/v1/regions/330000/partners/hz-metro/rotate-secret")
    assert rotated.json()["key_id"] == "k2"
    assert ops.get("viewer", "/v1/regions/330000/partners").status_code == 403
    assert len(ops.get("op1", "/v1/regions/330000/partners").json()["partners"]) >= 2
