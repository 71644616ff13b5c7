"""Four-eyes manual adjustments: request, approve (by someone else), reject, list (ops_api.service.adjustments)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ops_api.domain.adjustments import Adjustment, AdjustmentState
from ops_api.domain.staff import Role
from ops_api.problems import invalid
from ops_api.routes.common import Body, Json, PageSize, PageToken
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope, page
from ops_api.service import adjustments
from ops_api.service.audit import audited

router = APIRouter(prefix="/v1/adjustments", tags=["adjustments (four eyes)"])
AdjustmentId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


class AdjustmentModel(BaseModel):
    """A manual adjustment request and, once decided, its decision and ledger transfer."""

    model_config = ConfigDict(title="Adjustment")
    adjustment_id: str
    request_id: str
    account_number: str
    region_code: str
    amount_points: int = Field(description="positive credits the account, negative debits it")
    reason: str
    state: AdjustmentState
    requested_by: str
    requested_at: str
    decided_by: str
    decided_at: str | None
    decision_reason: str
    transfer_id: str
    failure_reason: str


AdjustmentResponse = envelope("AdjustmentResponse", "One adjustment request.", adjustment=AdjustmentModel)
AdjustmentPage = page("AdjustmentPage", "adjustments", AdjustmentModel, "Adjustment requests, newest first.")


def adjustment_json(adjustment: Adjustment) -> Json:
    """Every field of the request, times in ISO format (or null)."""
    fields = asdict(adjustment)
    fields["state"] = adjustment.state.value
    for key in ("requested_at", "decided_at"):
        fields[key] = fields[key].isoformat() if fields[key] is not None else None
    return fields


class AdjustmentBody(Body):
    account_number: str = Field(pattern=r"^[0-9]{16}$")
    amount_points: int = Field(
        ge=-10_000_000, le=10_000_000, description="positive credits the account, negative debits it; not zero"
    )
    reason: str = Field(min_length=3, max_length=1000, description="why, for the approver and the audit log")


class DecisionBody(Body):
    reason: str = Field(default="", max_length=1000)


@router.post(
    "",
    status_code=201,
    summary="Request a manual adjustment (needs another person's approval)",
    response_model=AdjustmentResponse,
)
def request_adjustment(context: Ctx, staff: CurrentStaff, rid: RequestId, body: AdjustmentBody) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    if body.amount_points == 0:
        raise invalid("amount_points", "must not be zero", 422)
    region = context.regions.home(body.account_number)

    def run() -> Json:
        found = adjustments.request_adjustment(
            context, staff, rid, body.account_number, region.region_code, body.amount_points, body.reason
        )
        return {"adjustment": adjustment_json(found)}

    details = {"amount_points": body.amount_points}
    return audited(
        context, staff, rid, "adjustment.request", body.account_number, run, reason=body.reason, details=details
    )


@router.post(
    "/{adjustment_id}/approve",
    summary="Approve someone else's adjustment; the ledger posts it",
    response_model=AdjustmentResponse,
)
def approve_adjustment(
    context: Ctx, staff: CurrentStaff, rid: RequestId, adjustment_id: AdjustmentId, body: DecisionBody
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)

    def run() -> Json:
        return {"adjustment": adjustment_json(adjustments.approve(context, staff, adjustment_id, body.reason))}

    target = f"adjustment:{adjustment_id}"
    return audited(context, staff, rid, "adjustment.approve", target, run, reason=body.reason)


@router.post("/{adjustment_id}/reject", summary="Reject someone else's adjustment", response_model=AdjustmentResponse)
def reject_adjustment(
    context: Ctx, staff: CurrentStaff, rid: RequestId, adjustment_id: AdjustmentId, body: DecisionBody
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)

    def run() -> Json:
        return {"adjustment": adjustment_json(adjustments.reject(context, staff, adjustment_id, body.reason))}

    return audited(context, staff, rid, "adjustment.reject", f"adjustment:{adjustment_id}", run, reason=body.reason)


@router.get("/{adjustment_id}", summary="One adjustment request", response_model=AdjustmentResponse)
def get_adjustment(context: Ctx, staff: CurrentStaff, adjustment_id: AdjustmentId) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    return {"adjustment": adjustment_json(adjustments.get(context, adjustment_id))}


@router.get("", summary="Adjustment requests, newest first", response_model=AdjustmentPage)
def list_adjustments(
    context: Ctx,
    staff: CurrentStaff,
    state: Annotated[str, Query(pattern=r"^(|PENDING|APPROVED|POSTED|FAILED|REJECTED)$")] = "",
    account_number: Annotated[str, Query(pattern=r"^[0-9]{16}$")] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    rows, next_token = adjustments.list_adjustments(context, state, account_number, page_size or 50, page_token)
    return {"adjustments": [adjustment_json(row) for row in rows], "next_page_token": next_token}
