"""A region's books: expiry sweeps, conservation and journal verification (ledger_svc)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter
from pydantic import Field

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ops_api.domain.staff import Role
from ops_api.routes.common import Body, Json, RegionCode, region_for
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import message_model
from ops_api.service.audit import audited
from ops_api.wire import proto_date, to_json

router = APIRouter(prefix="/v1/regions/{region_code}", tags=["books"])

ExpirySweep = message_model(lpb.ExpirePointsResponse.DESCRIPTOR)
Conservation = message_model(lpb.CheckConservationResponse.DESCRIPTOR)
JournalVerification = message_model(lpb.VerifyJournalResponse.DESCRIPTOR)
# A sweep over a large book takes several calls (max_batches); each one is bounded by this deadline.
SWEEP_TIMEOUT_S = 60.0


class ExpirySweepBody(Body):
    as_of: date | None = Field(default=None, description="expire lots expired by the start of this day (CST)")
    batch_size: int = Field(default=0, ge=0, le=100_000, description="lots per transaction; 0: the ledger's default")
    max_batches: int = Field(default=10, ge=0, le=10_000, description="0: until done; call again to resume")


@router.post("/expiry-sweeps", summary="Run (or resume) the expiry sweep of a region", response_model=ExpirySweep)
def run_expiry_sweep(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, body: ExpirySweepBody
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.ledger(region)
    request = lpb.ExpirePointsRequest(batch_size=body.batch_size, max_batches=body.max_batches)
    if body.as_of:
        request.as_of.CopyFrom(proto_date(body.as_of))

    def run() -> Json:
        return to_json(context.regions.call("ledger", stub.ExpirePoints, request, timeout_s=SWEEP_TIMEOUT_S))

    details = body.model_dump(mode="json")
    return audited(context, staff, rid, "ledger.expire_points", f"region:{region_code}", run, details=details)


@router.get(
    "/conservation",
    summary="Do the region's books balance (issued = outstanding + spent, sum zero)?",
    response_model=Conservation,
)
def check_conservation(context: Ctx, staff: CurrentStaff, region_code: RegionCode) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ledger(region)
    return to_json(context.regions.call("ledger", stub.CheckConservation, lpb.CheckConservationRequest()))


@router.get("/journal-verification", summary="Recompute the journal's hash chain", response_model=JournalVerification)
def verify_journal(context: Ctx, staff: CurrentStaff, region_code: RegionCode) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ledger(region)
    request = lpb.VerifyJournalRequest()
    return to_json(context.regions.call("ledger", stub.VerifyJournal, request, timeout_s=SWEEP_TIMEOUT_S))
