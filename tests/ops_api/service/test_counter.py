"""The community centre counter: community events through ingest, redemptions, vouchers."""

from __future__ import annotations

from tests.ops_api.ops_support import Ops


def test_tree_planting_credits_points_lots_statement_and_expiry(ops: Ops) -> None:
    account = ops.open_account()
    assert ops.plant_trees(account, times=2).json()["result"]["points"] == 200
    balance = ops.get("zj-staff", f"/v1/accounts/{account}/balance").json()["balance"]
    assert balance["available_points"] == 400
    lots = ops.get("zj-staff", f"/v1/accounts/{account}/lots", page_size=10).json()
    assert sum(lot["remaining_points"] for lot in lots["lots"]) == 400 and "next_page_token" in lots
    statement = ops.get("zj-staff", f"/v1/accounts/{account}/statement", page_size=1).json()
    assert statement["entries"][0]["code"] == "TRANSFER_CODE_EARN"
    expiring = ops.get("zj-staff", f"/v1/accounts/{account}/expiring-points", within_days=800).json()["expiring"]
    assert sum(e["amount_points"] for e in expiring) == 400


def test_community_event_without_consent_is_refused_with_the_ingest_reason(ops: Ops) -> None:
    account = ops.open_account(consent=False)
    response = ops.plant_trees(account)
    assert response.status_code == 422 and response.json()["reason"] == "CONSENT_MISSING"


def test_retried_community_event_credits_once(ops: Ops) -> None:
    account = ops.open_account()
    body = {"behaviour": "tree_planting"}
    first = ops.post("zj-staff", f"/v1/accounts/{account}/community-events", body, request_id="tree-once")
    again = ops.post("zj-staff", f"/v1/accounts/{account}/community-events", body, request_id="tree-once")
    assert first.json()["result"]["outcome"] == "EVENT_OUTCOME_ACCEPTED"
    assert again.json()["result"]["outcome"] == "EVENT_OUTCOME_DUPLICATE"
    assert ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"] == 200


def test_redeem_at_the_counter_and_list_vouchers(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account)
    response = ops.post("zj-staff", f"/v1/accounts/{account}/redemptions", {"reward_id": "transit-topup"})
    assert response.status_code == 201, response.text
    assert response.json()["redemption"]["state"] == "REDEMPTION_STATE_COMPLETED"
    vouchers = ops.get("zj-staff", f"/v1/accounts/{account}/vouchers").json()["vouchers"]
    assert len(vouchers) == 1
    short = ops.post("zj-staff", f"/v1/accounts/{account}/redemptions", {"reward_id": "green-appliance-subsidy"})
    assert short.status_code == 409 and short.json()["reason"] == "INSUFFICIENT_POINTS"
