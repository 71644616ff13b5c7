"""The community centre counter: community events through ingest, redemptions, vouchers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service_kit.clock import china_day, set_rehearsal_offset
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


def test_a_supervisors_20_days_recorded_at_once_earn_50_points_a_day_each_day_capped(ops: Ops) -> None:
    # She opened her account and consented to garbage sorting data a month ago: the whole system's clock goes back.
    set_rehearsal_offset(-timedelta(days=30))
    try:
        account = ops.open_account(consent=False)
        consent = {"category": "GARBAGE_SORTING", "grant": True}
        assert ops.post("zj-staff", f"/v1/accounts/{account}/consents", consent).status_code == 200
    finally:
        set_rehearsal_offset(timedelta(0))
    path = f"/v1/accounts/{account}/community-events"
    month = ops.post("zj-staff", path, {"behaviour": "sorting_supervisor_day", "quantity": 20}, request_id="sheet-1")
    assert month.status_code == 200, month.text
    assert month.json()["points"] == 1000 and len(month.json()["results"]) == 20
    assert all(result["outcome"] == "EVENT_OUTCOME_ACCEPTED" for result in month.json()["results"])
    # The same last three days on a second sheet: each day already counted its one supervisor day.
    again = ops.post("zj-staff", path, {"behaviour": "sorting_supervisor_day", "quantity": 3}, request_id="sheet-2")
    assert again.status_code == 200 and again.json()["points"] == 0, again.text
    assert [result["reason"] for result in again.json()["results"]] == ["DAILY_CAP_REACHED"] * 3
    assert ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"] == 1000
    # A 32nd day back is beyond the counter's month of acceptance.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    sheet = {"behaviour": "sorting_supervisor_day", "quantity": 31, "occurred_at": yesterday}
    older = ops.post("zj-staff", path, sheet, request_id="sheet-3")
    assert older.status_code == 200, older.text
    first = older.json()["results"][0]
    assert (first["outcome"], first["reason"]) == ("EVENT_OUTCOME_REJECTED", "TOO_OLD")


def test_three_plantings_recorded_at_once_count_the_daily_cap_of_two(ops: Ops) -> None:
    account = ops.open_account()
    path = f"/v1/accounts/{account}/community-events"
    planted = ops.post("zj-staff", path, {"behaviour": "tree_planting", "quantity": 3}, request_id="three-trees")
    assert planted.status_code == 200, planted.text
    assert planted.json()["points"] == 400
    assert ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"] == 400


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


def test_the_monthly_summary_at_the_counter_as_data_and_as_a_page_to_print(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account, times=2)
    month = china_day(datetime.now(UTC))
    path = f"/v1/accounts/{account}/monthly-summary"
    summary = ops.get("zj-staff", path, year=month.year, month=month.month).json()["summary"]
    assert summary["earned_points"] == 400 and summary["by_behaviour"][0]["behaviour"] == "tree_planting"
    page = ops.get("zj-staff", path, year=month.year, month=month.month, format="text")
    assert page.headers["content-type"].startswith("text/plain")
    assert "获得积分 / Points earned: 400" in page.text and account in page.text
    assert ops.get("zj-staff", path, year=month.year, month=13).status_code == 422
