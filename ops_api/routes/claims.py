"""Conflicting activity claims through the gateway (issue 16): per day, which partner's reports of activities another
partner had already claimed, a fraud signal (docs/adr/0607-claim-conflicts-for-ops.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from carbon.gateway.v1 import gateway_service_pb2 as gpb
from ops_api.domain.staff import Role
from ops_api.problems import invalid
from ops_api.routes.common import Json
from ops_api.routes.dependencies import Ctx, CurrentStaff
from ops_api.schemas import message_model
from ops_api.wire import to_json

router = APIRouter(prefix="/v1", tags=["federation"])

ClaimConflicts = message_model(gpb.ListClaimConflictsResponse.DESCRIPTOR)
# As the gateway bounds it: about two months of days per call.
MAX_DAYS = 62


@router.get(
    "/claim-conflicts",
    summary="Conflicting activity claims per day and (holder, claimant) partner pair",
    response_model=ClaimConflicts,
)
def list_claim_conflicts(
    context: Ctx,
    staff: CurrentStaff,
    from_day: Annotated[date, Query(description="first day included (CST)")],
    to_day: Annotated[date, Query(description=f"last day included (CST), at most {MAX_DAYS} days after from_day")],
) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    if to_day < from_day:
        raise invalid("to_day", "must not be before from_day")
    if (to_day - from_day).days >= MAX_DAYS:
        raise invalid("to_day", f"at most {MAX_DAYS} days per request")
    stub = context.gateway.stub()
    request = gpb.ListClaimConflictsRequest(from_day=from_day.isoformat(), to_day=to_day.isoformat())
    return to_json(context.gateway.call(stub.ListClaimConflicts, request))
