"""The community centre counter: community events recorded for residents, redemptions, vouchers, consents
(the flows: ops_api.service.counter)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as FastApiPath
from fastapi.responses import PlainTextResponse
from pydantic import Field

from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from ops_api.domain.staff import Role
from ops_api.routes.common import AccountNumber, Body, Json, PageSize, PageToken, account_home, enum_name
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope, page
from ops_api.service import counter
from ops_api.service.audit import audited
from ops_api.wire import to_json

router = APIRouter(prefix="/v1/accounts", tags=["community counter"])

EventResultResponse = envelope(
    "CommunityEventResult",
    "How ingest scored the record: the first unit's result, one result per unit (oldest first), their points.",
    result=inpb.EventResult,
    results=list[inpb.EventResult],
    points=int,
)
MonthlySummaryResponse = envelope(
    "MonthlySummaryResponse", "The resident's month.", summary=lpb.GetMonthlySummaryResponse
)
RedemptionResponse = envelope("RedemptionResponse", "The redemption and its vouchers.", redemption=rpb.Redemption)
VoucherPage = page("VoucherPage", "vouchers", rpb.Voucher, "The account's vouchers.")
VoucherResponse = envelope("VoucherResponse", "The voucher after the call.", voucher=rpb.Voucher)
ConsentResponse = envelope("ConsentResponse", "The consent as recorded.", consent=ipb.ConsentRecord)
COUNTER_ROLES = (Role.COMMUNITY_STAFF, Role.OPERATOR, Role.ADMIN)


class CommunityBehaviour(StrEnum):
    TREE_PLANTING = "tree_planting"
    SORTING_SUPERVISOR_DAY = "sorting_supervisor_day"
    # Only where the region's catalog offers it (the community partner is allowed it there; elsewhere ingest refuses
    # it, 422 with its reason).
    RECYCLING_KG = "recycling_kg"


class CommunityEventBody(Body):
    behaviour: CommunityBehaviour
    quantity: int = Field(
        default=1,
        ge=1,
        le=31,
        description="times (tree planting, all on the day of occurred_at) or days (supervisor: the consecutive days "
        "ending on the day of occurred_at, one per day), each unit one event counted within its day's cap; or kg "
        "(recycling: one event of that weight, the day's cap in kg applied)",
    )
    occurred_at: datetime | None = Field(default=None, description="defaults to now; the last day of a run of days")
    evidence_ref: str = Field(
        default="",
        max_length=200,
        description="the activity's own reference (sign-in sheet id, weighing ticket): another partner reporting the "
        "same one earns nothing for it; empty: this record's own, so distinct records never count as one activity",
    )


@router.post(
    "/{account_number}/community-events",
    summary="Record a community event (tree planting, supervisor day, recycling in kg)",
    response_model=EventResultResponse,
)
def record_community_event(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: CommunityEventBody
) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)
    request = counter.community_event_request(
        context,
        staff,
        rid,
        region,
        account_number=account_number,
        behaviour=body.behaviour.value,
        quantity=body.quantity,
        occurred_at=body.occurred_at,
        evidence_ref=body.evidence_ref,
    )

    def run() -> Json:
        results = counter.submit_community_event(context, region, request)
        # `result` is the first unit's (the only one of a single record); `results` has one per unit, oldest first.
        return {
            "result": to_json(results[0]),
            "results": [to_json(result) for result in results],
            "points": sum(result.points for result in results),
        }

    details = {"behaviour": body.behaviour.value, "quantity": body.quantity, "centre_id": staff.centre_id}
    return audited(context, staff, rid, "community_event.record", account_number, run, details=details)


@router.get(
    "/{account_number}/monthly-summary",
    summary="A resident's month: points earned, spent, expired, donated, moved; CO2e by behaviour; soon expiring",
    response_model=None,
    responses={200: {"model": MonthlySummaryResponse, "content": {"text/plain": {}}}},
)
def monthly_summary(
    context: Ctx,
    staff: CurrentStaff,
    account_number: AccountNumber,
    year: Annotated[int, Query(ge=2000, le=9999)],
    month: Annotated[int, Query(ge=1, le=12)],
    format: Annotated[str, Query(pattern=r"^(json|text)$", description="text: a page to print for the resident")] = (
        "json"
    ),
) -> Json | PlainTextResponse:
    region = account_home(context, staff, account_number)
    stub = context.regions.ledger(region)
    request = lpb.GetMonthlySummaryRequest(account=account_number, year=year, month=month)
    summary = context.regions.call("ledger", stub.GetMonthlySummary, request)
    if format == "text":
        return PlainTextResponse(counter.printable_summary(summary))
    return {"summary": to_json(summary)}


class RedeemBody(Body):
    reward_id: str = Field(min_length=1, max_length=128)
    quantity: int = Field(default=1, ge=1, le=1000)


@router.post(
    "/{account_number}/redemptions",
    status_code=201,
    summary="Redeem at the community points counter",
    response_model=RedemptionResponse,
)
def redeem(context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: RedeemBody) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)

    def run() -> Json:
        redemption = counter.redeem(context, staff, rid, account_number, region, body.reward_id, body.quantity)
        return {"redemption": to_json(redemption)}

    details = {"reward_id": body.reward_id, "quantity": body.quantity}
    return audited(context, staff, rid, "reward.redeem", account_number, run, details=details)


@router.get("/{account_number}/vouchers", summary="The account's vouchers", response_model=VoucherPage)
def list_vouchers(
    context: Ctx,
    staff: CurrentStaff,
    account_number: AccountNumber,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    state: Annotated[str, Query(pattern=r"^(|(VOUCHER_STATE_)?(ISSUED|USED|CANCELLED|EXPIRED))$")] = "",
) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.rewards(region)
    request = rpb.ListVouchersRequest(
        account_number=account_number,
        state=rpb.VoucherState.Value(f"VOUCHER_STATE_{state.removeprefix('VOUCHER_STATE_')}") if state else 0,  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )
    response = context.regions.call("rewards", stub.ListVouchers, request)
    return {"vouchers": [to_json(v) for v in response.vouchers], "next_page_token": response.next_page_token}


VoucherCode = Annotated[
    str, FastApiPath(pattern=r"^[A-Za-z0-9-]{4,64}$", description="the code printed on the voucher")
]


@router.post(
    "/{account_number}/vouchers/{code}/use",
    summary="Use (redeem in person) a voucher at the counter",
    response_model=VoucherResponse,
)
def use_voucher(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, code: VoucherCode
) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)

    def run() -> Json:
        return {"voucher": to_json(counter.use_voucher(context, staff, rid, account_number, region, code))}

    return audited(context, staff, rid, "voucher.use", account_number, run, details={"centre_id": staff.centre_id})


class DataCategoryName(StrEnum):
    """carbon.common.v1.DataCategory by its full name, as responses show it."""

    TRANSIT = "DATA_CATEGORY_TRANSIT"
    CYCLING = "DATA_CATEGORY_CYCLING"
    EV_CHARGING = "DATA_CATEGORY_EV_CHARGING"
    FOOD_DELIVERY = "DATA_CATEGORY_FOOD_DELIVERY"
    SHOPPING = "DATA_CATEGORY_SHOPPING"
    GARBAGE_SORTING = "DATA_CATEGORY_GARBAGE_SORTING"
    COMMUNITY_ACTIVITY = "DATA_CATEGORY_COMMUNITY_ACTIVITY"
    UTILITIES = "DATA_CATEGORY_UTILITIES"
    CROSS_REGION_SHARING = "DATA_CATEGORY_CROSS_REGION_SHARING"
    PERSONALISATION = "DATA_CATEGORY_PERSONALISATION"


DataCategory = Annotated[DataCategoryName, enum_name("DATA_CATEGORY_")]


class ConsentBody(Body):
    category: DataCategory
    grant: bool = Field(description="true: the resident grants consent; false: revokes it")
    guardian_account_number: str = Field(
        default="",
        pattern=r"^([0-9]{16})?$",
        description="required while the resident is under 14: the guardian present, who decides (ADR 0206)",
    )


@router.post(
    "/{account_number}/consents",
    summary="Record a resident's consent (or revocation) given at the counter",
    response_model=ConsentResponse,
)
def record_consent(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: ConsentBody
) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)

    def run() -> Json:
        consent = counter.record_consent(
            context, staff, rid, account_number, region, body.category.value, body.grant, body.guardian_account_number
        )
        return {"consent": to_json(consent)}

    action = "consent.grant" if body.grant else "consent.revoke"
    return audited(context, staff, rid, action, account_number, run, details={"category": body.category.value})
