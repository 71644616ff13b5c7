"""Accounts, the community counter and the roles around them."""

from __future__ import annotations

from sqlalchemy import select

from ops_api.store import audit_log
from tests.ops_api.ops_support import Ops


def test_health_answers_without_a_token(ops: Ops) -> None:
    assert ops.client.get("/healthz").json() == {"status": "SERVING"}


def test_missing_token_is_a_401_problem_with_the_reason_and_request_id(ops: Ops) -> None:
    response = ops.client.get("/v1/me", headers={"X-Request-Id": "abc-1"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "abc-1"
    body = response.json()
    assert body["reason"] == "CREDENTIALS_MISSING" and body["status"] == 401 and body["request_id"] == "abc-1"
    assert {"type", "title", "detail", "instance"} <= set(body)


def test_unknown_token_is_refused(ops: Ops) -> None:
    response = ops.client.get("/v1/me", headers={"Authorization": "Bearer cops_nope"})
    assert response.status_code == 401 and response.json()["reason"] == "TOKEN_INVALID"


def test_community_staff_opens_an_account_at_their_centre_masked(ops: Ops) -> None:
    account = ops.open_account("zj-staff", "330000")
    found = ops.get("viewer", f"/v1/accounts/{account}").json()["account"]
    assert found["opened_via"] == "CHANNEL_COMMUNITY_CENTRE"
    assert "*" in found["masked_id_number"] and "*" in found["masked_phone_number"]


def test_account_is_found_by_phone_in_every_region_masked(ops: Ops) -> None:
    account = ops.open_account("bj-staff", "110000", consent=False)
    phone = f"139{ops.last_person:08d}"
    found = ops.get("viewer", "/v1/accounts/search", phone_number=phone).json()["accounts"]
    assert [a["account_number"] for a in found] == [account]
    assert phone not in str(found)


def test_community_staff_cannot_touch_another_regions_account(ops: Ops) -> None:
    beijing = ops.open_account("bj-staff", "110000")
    for response in (
        ops.get("zj-staff", f"/v1/accounts/{beijing}/balance"),
        ops.plant_trees(beijing, who="zj-staff"),
        ops.post("zj-staff", "/v1/accounts", {"region_code": "110000", "name": "李", "id_number": "11010519491231002X",
                                              "phone_number": "13800000000"}),
    ):  # fmt: skip
        assert response.status_code == 403, response.text
        assert response.json()["reason"] == "STAFF_REGION_MISMATCH"


def test_viewer_cannot_mutate(ops: Ops) -> None:
    account = ops.open_account()
    for path, body in (
        (f"/v1/accounts/{account}/community-events", {"behaviour": "tree_planting"}),
        (f"/v1/accounts/{account}/redemptions", {"reward_id": "museum-free-reservation"}),
        ("/v1/adjustments", {"account_number": account, "amount_points": 5, "reason": "test"}),
        ("/v1/regions/330000/expiry-sweeps", {}),
    ):
        response = ops.post("viewer", path, body)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["reason"] == "ROLE_NOT_ALLOWED"


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


def test_every_mutation_is_audited_with_who_what_and_outcome(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account)
    ops.post("zj-staff", f"/v1/accounts/{account}/redemptions", {"reward_id": "no-such-reward"})
    with ops.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(audit_log).where(audit_log.c.actor == "zj-staff"))]
    actions = {(r["action"], r["outcome"]) for r in rows}
    assert ("account.open", "ok") in actions and ("community_event.record", "ok") in actions
    assert any(action == "reward.redeem" and outcome != "ok" for action, outcome in actions)
    assert all("王秀英" not in r["details_json"] for r in rows), "personal data must stay out of the audit log"
    entries = ops.get("admin", "/v1/audit-log", actor="zj-staff", page_size=2).json()
    assert len(entries["entries"]) == 2 and entries["next_page_token"]
    assert ops.get("viewer", "/v1/audit-log").status_code == 403
