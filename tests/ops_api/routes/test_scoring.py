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


def test_an_admin_changes_a_partners_behaviours_and_the_change_is_audited(ops: Ops) -> None:
    body = {"partner_id": "hz-bikes", "name": "Hangzhou Bikes", "kind": "TRANSIT_OPERATOR",
            "allowed_behaviours": ["bike_km"], "allowed_regions": ["330000"]}  # fmt: skip
    assert ops.post("admin", "/v1/regions/330000/partners", body).status_code == 201
    change = {"allowed_behaviours": ["bike_km", "transit_trip"], "reason": "now runs buses too"}
    path = "/v1/regions/330000/partners/hz-bikes/allowed-behaviours"

    refused = ops.post("op1", path, change)
    changed = ops.post("admin", path, change, request_id="chg-hz-bikes")
    retried = ops.post("admin", path, change, request_id="chg-hz-bikes")
    unknown = ops.post("admin", path, {"allowed_behaviours": ["moon_walk"], "reason": "typo"})

    assert refused.status_code == 403
    assert changed.status_code == 200, changed.text
    assert changed.json()["previous_behaviours"] == ["bike_km"]
    assert changed.json()["partner"]["allowed_behaviours"] == ["bike_km", "transit_trip"]
    assert retried.json() == changed.json()
    assert (unknown.status_code, unknown.json()["metadata"]["field"]) == (400, "allowed_behaviours")
    partner = ops.get("op1", "/v1/regions/330000/partners/hz-bikes").json()["partner"]
    assert partner["allowed_behaviours"] == ["bike_km", "transit_trip"]
    entries = ops.get("admin", "/v1/audit-log", page_size=50).json()["entries"]
    audited = [e for e in entries if e["action"] == "partner.change_behaviours" and e["outcome"] == "ok"]
    assert audited and audited[0]["reason"] == "now runs buses too" and audited[0]["actor"] == "admin"
