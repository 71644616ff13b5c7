"""Catalog, rules, partners, statistics, books and federation endpoints; rate limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from tests.ops_api.ops_support import Federation, Ops, make_ops


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


def test_statistics_conservation_journal_and_expiry_sweep(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account)
    today = datetime.now(UTC).date()
    stats = ops.get("viewer", "/v1/regions/330000/statistics", from_day=str(today - timedelta(days=1)),
                    to_day=str(today + timedelta(days=1))).json()  # fmt: skip
    assert sum(r["points"] for r in stats["rows"] if r["behaviour"] == "tree_planting") >= 200
    conservation = ops.get("viewer", "/v1/regions/330000/conservation").json()
    assert conservation["balanced"] is True and conservation["sum_of_all_balances_points"] == 0
    assert ops.get("viewer", "/v1/regions/330000/journal-verification").json()["ok"] is True
    sweep = ops.post("op1", "/v1/regions/330000/expiry-sweeps", {"max_batches": 0})
    assert sweep.status_code == 200, sweep.text and sweep.json()["done"] is True
    assert ops.get("zj-staff", "/v1/regions/110000/conservation").json()["reason"] == "STAFF_REGION_MISMATCH"


def test_cross_region_transfer_and_settlement_through_the_gateway(ops: Ops) -> None:
    source = ops.open_account("zj-staff", "330000")
    ops.plant_trees(source)
    target = ops.open_account("bj-staff", "110000", consent=False, person=ops.last_person)
    body = {"from_account": source, "to_account": target, "amount_points": 150, "reason": "resident moved to Beijing"}
    created = ops.post("op1", "/v1/cross-region-transfers", body)
    assert created.status_code in {201, 501}, created.text
    if created.status_code == 501:
        assert created.json()["reason"] == "UNIMPLEMENTED"
        return
    transfer = created.json()["transfer"]
    assert transfer["state"] == "CROSS_REGION_TRANSFER_STATE_COMMITTED", transfer
    got = ops.get("viewer", f"/v1/cross-region-transfers/{transfer['transfer_id']}").json()["transfer"]
    assert got["amount_points"] == 150
    assert ops.get("viewer", f"/v1/accounts/{target}/balance").json()["balance"]["available_points"] == 150
    now = datetime.now(UTC)
    report = ops.get("viewer", "/v1/settlement-report", period_start=(now - timedelta(hours=1)).isoformat(),
                     period_end=(now + timedelta(hours=1)).isoformat())  # fmt: skip
    assert report.status_code in {200, 501}, report.text
    listed = ops.get("viewer", "/v1/cross-region-transfers", account_number=source)
    assert listed.status_code in {200, 501}, listed.text


def test_requests_above_the_per_token_limit_get_429_with_retry_after(federation: Federation) -> None:
    limited = make_ops(federation, rate_limit_per_minute=3)
    try:
        statuses = [limited.get("viewer", "/v1/me").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = limited.get("viewer", "/v1/me")
        assert refused.json()["reason"] == "RATE_LIMITED" and int(refused.headers["retry-after"]) >= 1
        assert limited.get("admin", "/v1/me").status_code == 200  # per token, not global
    finally:
        limited.client.close()
        limited.engine.dispose()


def test_rate_limits_are_kept_in_redis(federation: Federation, redis_url: str, redis_prefix: str) -> None:
    first = make_ops(federation, rate_limit_per_minute=2, redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        assert [first.get("viewer", "/v1/me").status_code for _ in range(3)] == [200, 200, 429]
        assert redis.Redis.from_url(redis_url).keys(f"{redis_prefix}rate:*"), "the buckets live in Redis"
    finally:
        first.client.close()
        first.engine.dispose()
