"""Four-eyes manual adjustments: requested by one person, decided by another, posted once."""

from __future__ import annotations

from tests.ops_api.ops_support import Ops


def _request(ops: Ops, account: str, amount: int, who: str = "op1", request_id: str = "") -> dict[str, object]:
    body = {"account_number": account, "amount_points": amount, "reason": "lost sign-in sheet, ticket 42"}
    response = ops.post(who, "/v1/adjustments", body, request_id=request_id)
    assert response.status_code == 201, response.text
    adjustment: dict[str, object] = response.json()["adjustment"]
    return adjustment


def _balance(ops: Ops, account: str) -> int:
    return int(ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"])


def test_the_requester_cannot_approve_their_own_adjustment(ops: Ops) -> None:
    account = ops.open_account()
    adjustment = _request(ops, account, 300)
    response = ops.post("op1", f"/v1/adjustments/{adjustment['adjustment_id']}/approve")
    assert response.status_code == 403 and response.json()["reason"] == "SELF_APPROVAL_FORBIDDEN"
    assert _balance(ops, account) == 0


def test_a_second_operator_approves_and_the_ledger_posts_once(ops: Ops) -> None:
    account = ops.open_account()
    adjustment = _request(ops, account, 300)
    path = f"/v1/adjustments/{adjustment['adjustment_id']}/approve"
    approved = ops.post("op2", path, {"reason": "checked the sheet"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["adjustment"]["state"] == "POSTED"
    assert ops.post("op2", path).json()["adjustment"]["state"] == "POSTED"  # retried approval: no second posting
    assert _balance(ops, account) == 300
    statement = ops.get("viewer", f"/v1/accounts/{account}/statement").json()["entries"]
    assert [e["code"] for e in statement] == ["TRANSFER_CODE_ADJUST"]
    assert ops.post("admin", path).json()["reason"] == "ADJUSTMENT_ALREADY_DECIDED"


def test_a_negative_adjustment_beyond_the_balance_fails_with_the_ledger_reason(ops: Ops) -> None:
    account = ops.open_account()
    adjustment = _request(ops, account, -50)
    response = ops.post("op2", f"/v1/adjustments/{adjustment['adjustment_id']}/approve")
    assert response.status_code == 409 and response.json()["reason"] == "INSUFFICIENT_POINTS"
    assert ops.get("viewer", f"/v1/adjustments/{adjustment['adjustment_id']}").json()["adjustment"]["state"] == "FAILED"


def test_a_request_retried_with_the_same_request_id_is_one_request(ops: Ops) -> None:
    account = ops.open_account()
    first = _request(ops, account, 10, request_id="adj-retry")
    again = _request(ops, account, 10, request_id="adj-retry")
    assert first["adjustment_id"] == again["adjustment_id"]
    reused = ops.post("op1", "/v1/adjustments", {"account_number": account, "amount_points": 11, "reason": "other"},
                      request_id="adj-retry")  # fmt: skip
    assert reused.status_code == 409 and reused.json()["reason"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_rejected_adjustment_never_posts_and_lists_by_state(ops: Ops) -> None:
    account = ops.open_account()
    adjustment = _request(ops, account, 20)
    rejected = ops.post("admin", f"/v1/adjustments/{adjustment['adjustment_id']}/reject", {"reason": "no evidence"})
    assert rejected.json()["adjustment"]["state"] == "REJECTED"
    assert ops.post("op2", f"/v1/adjustments/{adjustment['adjustment_id']}/approve").status_code == 409
    listed = ops.get("viewer", "/v1/adjustments", state="REJECTED", account_number=account).json()["adjustments"]
    assert [a["adjustment_id"] for a in listed] == [adjustment["adjustment_id"]]
    assert _balance(ops, account) == 0


def test_community_staff_cannot_request_adjustments(ops: Ops) -> None:
    account = ops.open_account()
    response = ops.post("zj-staff", "/v1/adjustments", {"account_number": account, "amount_points": 5, "reason": "x"})
    assert response.status_code in {403, 422}


def test_an_out_of_range_page_token_is_not_a_server_error(ops: Ops) -> None:
    response = ops.get("viewer", "/v1/adjustments", page_token="9" * 40)
    assert response.status_code == 200, response.text
