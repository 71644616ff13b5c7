"""Four-eyes manual adjustments: request, approve (by someone else, then the ledger posts), reject, read.

The rules are ops_api.domain.adjustments; this module keeps the requests in the ops database and posts approved ones
in the account's home ledger.
"""

from __future__ import annotations

import uuid

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ops_api.context import OpsContext
from ops_api.domain.adjustments import (
    Adjustment,
    AdjustmentPosting,
    AdjustmentState,
    posting_of,
    require_decided_as,
    require_other_person,
    require_same_request,
)
from ops_api.domain.staff import Staff
from ops_api.problems import Problem
from ops_api.store import adjustments as store

POSTED = (lpb.TRANSFER_STATUS_POSTED, lpb.TRANSFER_STATUS_ALREADY_POSTED)


def get(context: OpsContext, adjustment_id: str) -> Adjustment:
    with context.engine.connect() as conn:
        found = store.get(conn, adjustment_id)
    if found is None:
        raise Problem(404, "ADJUSTMENT_NOT_FOUND", f"no adjustment {adjustment_id}", {"adjustment_id": adjustment_id})
    return found


def request_adjustment(
    context: OpsContext, staff: Staff, rid: str, account_number: str, region_code: str, amount_points: int, reason: str
) -> Adjustment:
    """Records a PENDING request; a retry with the same request id returns it."""
    with context.engine.begin() as conn:
        existing = store.get_by_request(conn, staff.user_id, rid)
        if existing is None:
            store.insert_adjustment(
                conn,
                Adjustment(
                    adjustment_id=str(uuid.uuid4()),
                    request_id=rid,
                    account_number=account_number,
                    region_code=region_code,
                    amount_points=amount_points,
                    reason=reason,
                    state=AdjustmentState.PENDING,
                    requested_by=staff.user_id,
                    requested_at=context.clock(),
                ),
            )
        found = store.get_by_request(conn, staff.user_id, rid)
    assert found is not None
    if existing is not None:
        require_same_request(found, account_number, amount_points, rid)
    return found


def _decide(context: OpsContext, staff: Staff, adjustment_id: str, state: AdjustmentState, reason: str) -> Adjustment:
    """Moves PENDING to `state` for a person other than the requester; a repeat by the same decider is a no-op."""
    require_other_person(get(context, adjustment_id), staff.user_id)
    with context.engine.begin() as conn:
        store.decide(conn, adjustment_id, state, staff.user_id, context.clock(), reason)
    decided = get(context, adjustment_id)
    require_decided_as(decided, staff.user_id, state)
    return decided


def reject(context: OpsContext, staff: Staff, adjustment_id: str, decision_reason: str) -> Adjustment:
    return _decide(context, staff, adjustment_id, AdjustmentState.REJECTED, decision_reason)


def approve(context: OpsContext, staff: Staff, adjustment_id: str, decision_reason: str) -> Adjustment:
    """Approves and posts. Posting is idempotent by transfer id, so re-approving an APPROVED one finishes it."""
    adjustment = _decide(context, staff, adjustment_id, AdjustmentState.APPROVED, decision_reason)
    if adjustment.state in (AdjustmentState.POSTED, AdjustmentState.FAILED):
        return adjustment
    posting = posting_of(adjustment, approved_by=staff.user_id)
    region = context.regions.region(adjustment.region_code)
    request = lpb.PostTransfersRequest(transfers=[_ledger_transfer(posting)])
    result = context.regions.call("ledger", context.regions.ledger(region).PostTransfers, request).results[0]
    posted = result.status in POSTED
    with context.engine.begin() as conn:
        store.record_posting(conn, adjustment_id, posting.transfer_id, posted, "" if posted else result.failure_reason)
    if not posted:
        raise Problem(
            409,
            result.failure_reason or "ADJUSTMENT_FAILED",
            result.failure_message or "the ledger refused the adjustment",
            {"adjustment_id": adjustment_id},
            domain="ledger.carbon-account",
        )
    return get(context, adjustment_id)


def _ledger_transfer(posting: AdjustmentPosting) -> lpb.Transfer:
    return lpb.Transfer(
        transfer_id=posting.transfer_id,
        debit_account=posting.debit_account,
        credit_account=posting.credit_account,
        amount_points=posting.amount_points,
        code=lpb.TRANSFER_CODE_ADJUST,
        reference=posting.reference,
        metadata={"requested_by": posting.requested_by, "approved_by": posting.approved_by},
    )


def list_adjustments(
    context: OpsContext, state: str, account_number: str, page_size: int, page_token: str
) -> tuple[list[Adjustment], str]:
    """Newest first, paged by an offset token."""
    offset = int(page_token) if page_token.isascii() and page_token.isdigit() and len(page_token) <= 9 else 0
    with context.engine.connect() as conn:
        rows = store.page(conn, state, account_number, offset, page_size + 1)
    more = len(rows) > page_size
    return rows[:page_size], str(offset + page_size) if more else ""
