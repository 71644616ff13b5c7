"""The routes the console added: the dashboard's figures, a voucher used at the counter, a score explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops_api.ops_support import Ops


def period() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"from_day": str(today - timedelta(days=1)), "to_day": str(today + timedelta(days=1))}


def test_dashboard_sums_the_regions_books_and_activity_and_community_staff_see_their_own(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account)
    figures = ops.get("viewer", "/v1/dashboard", **period()).json()
    assert {line["region_code"] for line in figures["by_region"]} == {"330000", "110000"}
    zhejiang = next(line for line in figures["by_region"] if line["region_code"] == "330000")
    assert zhejiang["issued_points"] >= 200 and zhejiang["points"] >= 200
    assert figures["national"]["issued_points"] == sum(line["issued_points"] for line in figures["by_region"])
    assert any(b["behaviour"] == "tree_planting" and b["points"] >= 200 for b in figures["by_behaviour"])
    own = ops.get("bj-staff", "/v1/dashboard", **period()).json()
    assert [line["region_code"] for line in own["by_region"]] == ["110000"]


def test_dashboard_refuses_a_backwards_or_too_long_period(ops: Ops) -> None:
    backwards = ops.get("viewer", "/v1/dashboard", from_day="2026-12-02", to_day="2026-12-01")
    assert backwards.status_code == 400 and backwards.json()["metadata"]["field"] == "to_day"
    too_long = ops.get("viewer", "/v1/dashboard", from_day="2024-01-01", to_day="2026-01-01")
    assert too_long.status_code == 400
    assert ops.client.get("/v1/dashboard", params=period()).status_code == 401


def test_a_voucher_is_used_once_at_the_counter_and_never_for_another_account(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account, times=3)
    balance = ops.get("zj-staff", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"]
    rewards = ops.get("zj-staff", "/v1/regions/330000/rewards").json()["rewards"]
    reward = min(rewards, key=lambda r: r["price_points"])
    assert reward["price_points"] <= balance
    redeemed = ops.post("zj-staff", f"/v1/accounts/{account}/redemptions", {"reward_id": reward["reward_id"]})
    assert redeemed.status_code == 201, redeemed.text
    code = redeemed.json()["redemption"]["vouchers"][0]["code"]
    other = ops.open_account()
    elsewhere = ops.post("zj-staff", f"/v1/accounts/{other}/vouchers/{code}/use")
    assert (elsewhere.status_code, elsewhere.json()["reason"]) == (404, "VOUCHER_NOT_FOUND")
    assert ops.post("viewer", f"/v1/accounts/{account}/vouchers/{code}/use").json()["reason"] == "ROLE_NOT_ALLOWED"
    used = ops.post("zj-staff", f"/v1/accounts/{account}/vouchers/{code}/use")
    assert used.status_code == 200, used.text
    assert used.json()["voucher"]["state"] == "VOUCHER_STATE_USED"
    again = ops.post("zj-staff", f"/v1/accounts/{account}/vouchers/{code}/use")
    assert again.status_code == 409 and again.json()["reason"] == "VOUCHER_ALREADY_USED"
    audit = ops.get("admin", "/v1/audit-log", action="voucher.use").json()["entries"]
    assert {entry["outcome"] for entry in audit if entry["target"] == account} >= {"ok", "VOUCHER_ALREADY_USED"}


def test_score_explanation_of_a_counter_event(ops: Ops) -> None:
    account = ops.open_account()
    event_id = ops.plant_trees(account).json()["result"]["event_id"]
    explained = ops.get("viewer", "/v1/regions/330000/score-explanation", partner_id="community-centre",
                        event_id=event_id)  # fmt: skip
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["behaviour"] == "tree_planting" and body["rule_version_id"] and body["consent_allowed"] is True
    unknown = ops.get("viewer", "/v1/regions/330000/score-explanation", partner_id="community-centre", event_id="nope")
    assert unknown.status_code == 404
    assert ops.get("zj-staff", "/v1/regions/110000/score-explanation", partner_id="community-centre",
                   event_id=event_id).json()["reason"] == "STAFF_REGION_MISMATCH"  # fmt: skip
