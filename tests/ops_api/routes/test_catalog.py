"""The benefits catalog of a region: create, change, retire, list."""

from __future__ import annotations

from tests.ops_api.ops_support import Ops


def test_catalog_create_update_retire(ops: Ops) -> None:
    reward = {"reward_id": "ops-tea-set", "name_en": "Tea set", "category": "PRACTICAL", "price_points": 800,
              "provider": "Xihu co-op"}  # fmt: skip
    created = ops.post("op1", "/v1/regions/330000/rewards", reward)
    assert created.status_code == 201, created.text
    changed = ops.client.patch(
        "/v1/regions/330000/rewards/ops-tea-set", headers=ops.headers("op1"), json={"price_points": 900}
    )
    assert changed.status_code == 200, changed.text and changed.json()["reward"]["price_points"] == 900
    retired = ops.post("op1", "/v1/regions/330000/rewards/ops-tea-set/retire")
    assert retired.json()["reward"]["retired"] is True
    listed = ops.get("viewer", "/v1/regions/330000/rewards", page_size=2).json()
    assert len(listed["rewards"]) == 2 and listed["next_page_token"]
    assert ops.post("zj-staff", "/v1/regions/330000/rewards", reward).status_code == 403


def test_a_category_is_named_on_input_as_responses_name_it(ops: Ops) -> None:
    reward = {"reward_id": "ops-museum", "name_en": "Museum", "category": "REWARD_CATEGORY_CULTURE_TOURISM",
              "price_points": 500, "provider": "Hangzhou museums"}  # fmt: skip
    created = ops.post("op1", "/v1/regions/330000/rewards", reward)
    assert created.status_code == 201, created.text
    assert created.json()["reward"]["category"] == "REWARD_CATEGORY_CULTURE_TOURISM"
    for name in ("REWARD_CATEGORY_CULTURE_TOURISM", "CULTURE_TOURISM"):  # the short name: still read, the same value
        listed = ops.get("viewer", "/v1/regions/330000/rewards", category=name).json()["rewards"]
        assert "ops-museum" in [r["reward_id"] for r in listed]
        assert {r["category"] for r in listed} == {"REWARD_CATEGORY_CULTURE_TOURISM"}
    assert ops.get("viewer", "/v1/regions/330000/rewards", category="REWARD_CATEGORY_NOPE").status_code == 422
