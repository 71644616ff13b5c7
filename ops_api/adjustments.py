"""Manual adjustments under four eyes: one person asks (with a reason), a different person approves, then the ledger
posts an ADJUST transfer between the account and system:adjustment.

Why four eyes: an adjustment creates or removes points outside every rule (no behaviour, no redemption), which is
exactly what fraud or a fat finger looks like; a second person's approval is the usual control for such entries.
Idempotency: a request is keyed by (requester, X-Request-Id); the posting by transfer id "ops-adjust-<id>", so an
approval retried after a crash posts once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ops_api.auth import Staff
from ops_api.context import OpsContext
from ops_api.problems import Problem
from ops_api.store import adjustments

ADJUSTMENT_ACCOUNT = "system:adjustment"
PENDING, APPROVED, POSTED, FAILED, REJECTED = "PENDING", "APPROVED", "POSTED", "FAILED", "REJECTED"


def _json(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("requested_at", "decided_at"):
        out[key] = out[key].isoformat() if isinstance(out[key], datetime) else None
    return out


def get(context: OpsContext, adjustment_id: str) -> dict[str, Any]:
    with context.engine.connect() as conn:
        row = conn.execute(select(adjustments).where(adjustments.c.adjustment_id == adjustment_id)).first()
    if row is None:
        raise Problem(404, "ADJUSTMENT_NOT_FOUND", f"no adjustment {adjustment_id}", {"adjustment_id": adjustment_id})
    return _json(row)


def request_adjustment(
    context: OpsContext, staff: Staff, rid: str, account_number: str, region_code: str, amount_points: int, reason: str
) -> tuple[dict[str, Any], bool]:
    """Records a PENDING request; a retry with the same request id returns it (created False)."""
    key = (adjustments.c.requested_by == staff.user_id, adjustments.c.request_id == rid)
    with context.engine.begin() as conn:
        existing = conn.execute(select(adjustments).where(*key)).first()
        if existing is None:
            conn.execute(
                insert(adjustments).values(
                    adjustment_id=str(uuid.uuid4()),
                    request_id=rid,
                    account_number=account_number,
                    region_code=region_code,
                    amount_points=amount_points,
                    reason=reason,
                    state=PENDING,
                    requested_by=staff.user_id,
                    requested_at=context.clock(),
                )
            )
        row = conn.execute(select(adjustments).where(*key)).one()
    found = _json(row)
    if existing is not None and (found["account_number"], found["amount_points"]) != (account_number, amount_points):
        raise Problem(
            409, "IDEMPOTENCY_KEY_REUSED", "X-Request-Id was used for a different adjustment", {"request_id": rid}
        )
    return found, existing is None


def _decide(context: OpsContext, staff: Staff, adjustment_id: str, state: str, decision_reason: str) -> dict[str, Any]:
    """Moves PENDING to `state` for a person other than the requester; a repeat by the same decider is a no-op."""
    current = get(context, adjustment_id)
    if current["requested_by"] == staff.user_id:
        raise Problem(
            403,
            "SELF_APPROVAL_FORBIDDEN",
            "an adjustment must be decided by someone other than the person who requested it",
            {"adjustment_id": adjustment_id},
        )
    with context.engine.begin() as conn:
        conn.execute(
            update(adjustments)
            .where(adjustments.c.adjustment_id == adjustment_id, adjustments.c.state == PENDING)
            .values(state=state, decided_by=staff.user_id, decided_at=context.clock(), decision_reason=decision_reason)
        )
    decided = get(context, adjustment_id)
    if decided["decided_by"] != staff.user_id or (decided["state"] == REJECTED) != (state == REJECTED):
        raise Problem(
            409,
            "ADJUSTMENT_ALREADY_DECIDED",
            f"adjustment {adjustment_id} is {decided['state']} (by {decided['decided_by']})",
            {"state": decided["state"]},
        )
    return decided


def reject(context: OpsContext, staff: Staff, adjustment_id: str, decision_reason: str) -> dict[str, Any]:
    return _decide(context, staff, adjustment_id, REJECTED, decision_reason)


def approve(context: OpsContext, staff: Staff, adjustment_id: str, decision_reason: str) -> dict[str, Any]:
    """Approves and posts. Posting is idempotent by transfer id, so re-approving an APPROVED one finishes it."""
    adjustment = _decide(context, staff, adjustment_id, APPROVED, decision_reason)
    if adjustment["state"] in {POSTED, FAILED}:
        return adjustment
    amount = int(adjustment["amount_points"])
    user, transfer_id = adjustment["account_number"], f"ops-adjust-{adjustment_id}"
    transfer = lpb.Transfer(
        transfer_id=transfer_id,
        debit_account=ADJUSTMENT_ACCOUNT if amount > 0 else user,
        credit_account=user if amount > 0 else ADJUSTMENT_ACCOUNT,
        amount_points=abs(amount),
        code=lpb.TRANSFER_CODE_ADJUST,
        reference=f"ops-adjustment:{adjustment_id}",
        metadata={"requested_by": adjustment["requested_by"], "approved_by": staff.user_id},
    )
    region = context.services.region(adjustment["region_code"])
    stub = context.services.ledger(region)
    response = context.services.call("ledger", stub.PostTransfers, lpb.PostTransfersRequest(transfers=[transfer]))
    result = response.results[0]
    ok = result.status in (lpb.TRANSFER_STATUS_POSTED, lpb.TRANSFER_STATUS_ALREADY_POSTED)
    with context.engine.begin() as conn:
        conn.execute(
            update(adjustments)
            .where(adjustments.c.adjustment_id == adjustment_id, adjustments.c.state == APPROVED)
            .values(
                state=POSTED if ok else FAILED,
                transfer_id=transfer_id,
                failure_reason="" if ok else result.failure_reason,
            )
        )
    if not ok:
        raise Problem(
            409,
            result.failure_reason or "ADJUSTMENT_FAILED",
            result.failure_message or "the ledger refused the adjustment",
            {"adjustment_id": adjustment_id},
            domain="ledger.carbon-account",
        )
    return get(context, adjustment_id)


def list_adjustments(
    context: OpsContext, state: str, account_number: str, page_size: int, page_token: str
) -> tuple[list[dict[str, Any]], str]:
    """Newest first, paged by (requested_at, id) offset token."""
    offset = int(page_token) if page_token.isascii() and page_token.isdigit() and len(page_token) <= 9 else 0
    query = select(adjustments).order_by(adjustments.c.requested_at.desc(), adjustments.c.adjustment_id)
    if state:
        query = query.where(adjustments.c.state == state)
    if account_number:
        query = query.where(adjustments.c.account_number == account_number)
    with context.engine.connect() as conn:
        rows = [_json(r) for r in conn.execute(query.offset(offset).limit(page_size + 1))]
    more = len(rows) > page_size
    return rows[:page_size], str(offset + page_size) if more else ""
