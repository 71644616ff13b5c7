"""A region's books: expiry sweeps as scheduled job runs, conservation and journal verification (ledger_svc)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ops_api.domain.staff import Role
from ops_api.problems import Problem
from ops_api.routes.common import Body, Json, RegionCode, region_for
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import message_model
from ops_api.service.audit import audited
from ops_api.wire import to_json

router = APIRouter(prefix="/v1/regions/{region_code}", tags=["books"])

JobRunModel = message_model(lpb.JobRun.DESCRIPTOR)
JobRunsModel = message_model(lpb.ListJobRunsResponse.DESCRIPTOR)
Conservation = message_model(lpb.CheckConservationResponse.DESCRIPTOR)
JournalVerification = message_model(lpb.VerifyJournalResponse.DESCRIPTOR)
# Verifying a large journal recomputes every block's hash in one call.
SWEEP_TIMEOUT_S = 60.0
JobName = Annotated[
    str, Path(pattern=r"^(expiry|hold_timeouts|monthly_close|reminders)$", description="the scheduled job")
]
Period = Annotated[
    str, Path(pattern=r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$", description="China day YYYY-MM-DD or month YYYY-MM")
]


class ExpirySweepBody(Body):
    as_of: date | None = Field(
        default=None, description="expire lots expired by the start of this China day, not after today; empty: today"
    )


@router.post(
    "/expiry-sweeps",
    summary="Start (or observe) the expiry sweep of a region as a scheduled job run",
    description="The region's scheduler leader runs it within seconds, in batches that each commit; the answer is the "
    "run as it stands (QUEUED when new; a DONE run of the same day is not run again). Follow it with GET "
    "job-runs/expiry/{period}.",
    response_model=JobRunModel,
    status_code=202,
)
def start_expiry_sweep(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, body: ExpirySweepBody
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.ledger(region)
    request = lpb.StartJobRunRequest(job="expiry", period=body.as_of.isoformat() if body.as_of else "")

    def run() -> Json:
        return to_json(context.regions.call("ledger", stub.StartJobRun, request).run)

    details = body.model_dump(mode="json")
    return audited(context, staff, rid, "ledger.start_job_run", f"region:{region_code}", run, details=details)


@router.get(
    "/job-runs", summary="The region's scheduled job runs, most recent first, and its scheduler's leader",
    response_model=JobRunsModel,
)  # fmt: skip
def list_job_runs(
    context: Ctx,
    staff: CurrentStaff,
    region_code: RegionCode,
    job: Annotated[str, Query(pattern=r"^(|expiry|hold_timeouts|monthly_close|reminders)$")] = "",
    limit: Annotated[int, Query(ge=0, le=200, description="0: 20")] = 0,
) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ledger(region)
    return to_json(context.regions.call("ledger", stub.ListJobRuns, lpb.ListJobRunsRequest(job=job, limit=limit)))


@router.get(
    "/job-runs/{job}/{period}", summary="One job run: its state and progress (lots, points, batches)",
    response_model=JobRunModel,
)  # fmt: skip
def get_job_run(context: Ctx, staff: CurrentStaff, region_code: RegionCode, job: JobName, period: Period) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ledger(region)
    request = lpb.ListJobRunsRequest(job=job, period=period, limit=1)
    runs = context.regions.call("ledger", stub.ListJobRuns, request).runs
    if not runs:
        raise Problem(404, "JOB_RUN_NOT_FOUND", f"no {job} run for {period}", {"job": job, "period": period})
    return to_json(runs[0])


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
