"""The community centre counter: community events recorded for residents, redemptions, vouchers.

Community events go through ingest like any partner's events: the API signs them as the community-centre partner
(its secret from CARBON_SECRET_COMMUNITY_PARTNER), so rules, caps, consent and dedupe apply unchanged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.rewards.v1 import rewards_service_pb2 as rpb
from ops_api.audit import audited
from ops_api.auth import Role
from ops_api.context import Ctx, CurrentStaff, RequestId, idempotency_key
from ops_api.problems import Problem
from ops_api.routes.common import AccountNumber, Body, Json, PageSize, PageToken, account_home
from ops_api.wire import timestamp, to_json
from service_kit.partner_signing import sign_request

router = APIRouter(prefix="/v1/accounts", tags=["community counter"])
COUNTER_ROLES = (Role.COMMUNITY_STAFF, Role.OPERATOR, Role.ADMIN)


class CommunityBehaviour(StrEnum):
    TREE_PLANTING = "tree_planting"
    SORTING_SUPERVISOR_DAY = "sorting_supervisor_day"


class CommunityEventBody(Body):
    behaviour: CommunityBehaviour
    quantity: int = Field(default=1, ge=1, le=31, description="times (tree planting) or days (supervisor)")
    occurred_at: datetime | None = Field(default=None, description="defaults to now")
    evidence_ref: str = Field(default="", max_length=200, description="sign-in sheet, photo id, ...")


@router.post("/{account_number}/community-events", summary="Record a community event (tree planting, supervisor day)")
def record_community_event(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: CommunityEventBody
) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)
    secret = context.settings.community_partner_secret(region.region_code)
    if not secret:
        raise Problem(
            503,
            "COMMUNITY_PARTNER_NOT_CONFIGURED",
            "set CARBON_SECRET_COMMUNITY_PARTNER (the community-centre partner's signing secret)",
            {"region": region.region_code},
        )
    key = idempotency_key(staff, rid)
    occurred = body.occurred_at or context.clock()
    event = inpb.Event(
        event_id=key,
        account=common_pb2.AccountRef(account_number=account_number),
        behaviour=body.behaviour.value,
        quantity_milli=body.quantity * 1000,
        occurred_at=timestamp(occurred),
        region_code=region.region_code,
        evidence_ref=body.evidence_ref or f"centre:{staff.centre_id or 'ops'}/staff:{staff.user_id}",
    )
    request = inpb.SubmitEventsRequest(partner_id=context.settings.community_partner_id, batch_id=key, events=[event])
    sign_request(request, context.settings.community_partner_key_id, secret.reveal())
    stub = context.services.ingest(region)

    def run() -> Json:
        response = context.services.call("ingest", stub.SubmitEvents, request)
        result = response.results[0]
        if result.outcome == inpb.EVENT_OUTCOME_REJECTED:
            raise Problem(422, result.reason or "REJECTED", result.message or "the event was rejected", domain="ingest")
        return {"result": to_json(result)}

    details = {"behaviour": body.behaviour.value, "quantity": body.quantity, "centre_id": staff.centre_id}
    return audited(context, staff, rid, "community_event.record", account_number, run, details=details)


class RedeemBody(Body):
    reward_id: str = Field(min_length=1, max_length=128)
    quantity: int = Field(default=1, ge=1, le=1000)


@router.post("/{account_number}/redemptions", status_code=201, summary="Redeem at the community points counter")
def redeem(context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: RedeemBody) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)
    stub = context.services.rewards(region)
    request = rpb.RedeemRequest(
        request_id=idempotency_key(staff, rid),
        account_number=account_number,
        reward_id=body.reward_id,
        quantity=body.quantity,
        region_code=region.region_code,
    )

    def run() -> Json:
        response = context.services.call("rewards", stub.Redeem, request)
        return {"redemption": to_json(response.redemption)}

    details = {"reward_id": body.reward_id, "quantity": body.quantity}
    return audited(context, staff, rid, "reward.redeem", account_number, run, details=details)


@router.get("/{account_number}/vouchers", summary="The account's vouchers")
def list_vouchers(
    context: Ctx,
    staff: CurrentStaff,
    account_number: AccountNumber,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    state: Annotated[str, Query(pattern=r"^(|ISSUED|USED|CANCELLED|EXPIRED)$")] = "",
) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.services.rewards(region)
    request = rpb.ListVouchersRequest(
        account_number=account_number,
        state=rpb.VoucherState.Value(f"VOUCHER_STATE_{state}") if state else 0,  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )
    response = context.services.call("rewards", stub.ListVouchers, request)
    return {"vouchers": [to_json(v) for v in response.vouchers], "next_page_token": response.next_page_token}


class DataCategory(StrEnum):
    TRANSIT = "TRANSIT"
    CYCLING = "CYCLING"
    EV_CHARGING = "EV_CHARGING"
    FOOD_DELIVERY = "FOOD_DELIVERY"
    SHOPPING = "SHOPPING"
    GARBAGE_SORTING = "GARBAGE_SORTING"
    COMMUNITY_ACTIVITY = "COMMUNITY_ACTIVITY"
    UTILITIES = "UTILITIES"


class ConsentBody(Body):
    category: DataCategory
    grant: bool = Field(description="true: the resident grants consent; false: revokes it")


@router.post("/{account_number}/consents", summary="Record a resident's consent (or revocation) given at the counter")
def record_consent(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: ConsentBody
) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)
    stub = context.services.identity(region)
    fields: dict[str, Any] = {
        "request_id": idempotency_key(staff, rid),
        "account_number": account_number,
        "category": common_pb2.DataCategory.Value(f"DATA_CATEGORY_{body.category.value}"),
        "channel": common_pb2.CHANNEL_COMMUNITY_CENTRE,
        "recorded_by": f"staff:{staff.user_id}",
    }

    def run() -> Json:
        if body.grant:
            granted = context.services.call("identity", stub.GrantConsent, ipb.GrantConsentRequest(**fields))
            return {"consent": to_json(granted.consent)}
        revoked = context.services.call("identity", stub.RevokeConsent, ipb.RevokeConsentRequest(**fields))
        return {"consent": to_json(revoked.consent)}

    action = "consent.grant" if body.grant else "consent.revoke"
    return audited(context, staff, rid, action, account_number, run, details={"category": body.category.value})
