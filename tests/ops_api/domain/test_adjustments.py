"""Four-eyes rules: another person decides, a retry asks for the same thing, the posting's direction and ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ops_api.domain.adjustments import (
    Adjustment,
    AdjustmentPosting,
    AdjustmentState,
    posting_of,
    require_decided_as,
    require_other_person,
    require_same_request,
)
from ops_api.problems import Problem
from service_kit.accounts import ADJUSTMENT_ACCOUNT

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ACCOUNT = "3300001234567890"


def adjustment(
    amount_points: int, state: AdjustmentState = AdjustmentState.PENDING, decided_by: str = ""
) -> Adjustment:
    return Adjustment(
        adjustment_id="a1", request_id="r1", account_number=ACCOUNT, region_code="330000",
        amount_points=amount_points, reason="lost sheet", state=state, requested_by="op1", requested_at=NOW,
        decided_by=decided_by,
    )  # fmt: skip


def test_a_positive_adjustment_credits_the_account_and_a_negative_one_debits_it() -> None:
    assert posting_of(adjustment(300), approved_by="op2") == AdjustmentPosting(
        transfer_id="ops-adjust-a1", debit_account=ADJUSTMENT_ACCOUNT, credit_account=ACCOUNT, amount_points=300,
        reference="ops-adjustment:a1", requested_by="op1", approved_by="op2",
    )  # fmt: skip
    back = posting_of(adjustment(-50), approved_by="op2")
    assert (back.debit_account, back.credit_account, back.amount_points) == (ACCOUNT, ADJUSTMENT_ACCOUNT, 50)


def test_the_requester_may_not_decide_their_own_adjustment() -> None:
    require_other_person(adjustment(10), "op2")
    with pytest.raises(Problem) as caught:
        require_other_person(adjustment(10), "op1")
    assert (caught.value.status, caught.value.reason) == (403, "SELF_APPROVAL_FORBIDDEN")


def test_a_decision_is_the_deciders_own_and_of_the_kind_asked_for() -> None:
    require_decided_as(adjustment(10, AdjustmentState.POSTED, "op2"), "op2", AdjustmentState.APPROVED)
    for decided, asked in [
        (adjustment(10, AdjustmentState.POSTED, "admin"), AdjustmentState.APPROVED),
        (adjustment(10, AdjustmentState.REJECTED, "op2"), AdjustmentState.APPROVED),
        (adjustment(10, AdjustmentState.APPROVED, "op2"), AdjustmentState.REJECTED),
    ]:
        with pytest.raises(Problem) as caught:
            require_decided_as(decided, "op2", asked)
        assert (caught.value.status, caught.value.reason) == (409, "ADJUSTMENT_ALREADY_DECIDED")


def test_a_retried_request_must_ask_for_the_same_adjustment() -> None:
    require_same_request(adjustment(10), ACCOUNT, 10, "r1")
    with pytest.raises(Problem) as caught:
        require_same_request(adjustment(10), ACCOUNT, 11, "r1")
    assert (caught.value.status, caught.value.reason) == (409, "IDEMPOTENCY_KEY_REUSED")
