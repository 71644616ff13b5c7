"""Incentive campaigns of a region (incentives_svc): list them with what they have paid, create one (its budget is
moved into the campaign's ledger account), or create a national campaign in every region at once; a resident's
offers, and accepting one for them at the counter (residents without a smartphone)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as FastApiPath
from pydantic import Field

from carbon.incentives.v1 import incentives_service_pb2 as npb
from ops_api.domain.requests import idempotency_key
from ops_api.domain.staff import Role
from ops_api.routes.common import AccountNumber, Body, Json, RegionCode, account_home, enum_name, region_for
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope
from ops_api.service.audit import audited
from ops_api.wire import timestamp, to_json

router = APIRouter(tags=["campaigns"])
# As incentives bounds ListOffers.max_results.
MAX_OFFERS = 10

CampaignResponse = envelope("CampaignResponse", "One campaign.", campaign=npb.Campaign)
CampaignList = envelope(
    "CampaignList", "A region's campaigns, newest first, with their spend.", campaigns=list[npb.Campaign]
)
NationalCampaigns = envelope(
    "NationalCampaigns",
    "The campaign as created in each region: campaigns[i] is region_codes[i]'s.",
    region_codes=list[str],
    campaigns=list[npb.Campaign],
)


class TargetKindName(StrEnum):
    """carbon.incentives.v1.TargetKind by its full name, as responses show it."""

    EVERYONE = "TARGET_KIND_EVERYONE"
    LAPSED = "TARGET_KIND_LAPSED"
    NEVER_TRIED = "TARGET_KIND_NEVER_TRIED"
    WEEKDAY_REGULAR = "TARGET_KIND_WEEKDAY_REGULAR"


Target = Annotated[TargetKindName, enum_name("TARGET_KIND_")]


class CampaignBody(Body):
    name: str = Field(min_length=1, max_length=100)
    behaviour: str = Field(min_length=1, max_length=64, description='a behaviour code, e.g. "transit_trip"')
    bonus_points: int = Field(default=0, ge=0, le=1_000_000, description="a fixed bonus; or bonus_percent")
    bonus_percent: int = Field(default=0, ge=0, le=1000, description="a bonus of this % of the event's points")
    target: Target
    target_days: int = Field(default=0, ge=0, le=365, description="LAPSED: days without the behaviour")
    target_weekdays: int = Field(default=0, ge=0, le=20, description="WEEKDAY_REGULAR: weekdays of the last 28")
    starts_at: datetime
    ends_at: datetime
    budget_points: int = Field(ge=1, le=1_000_000_000, description="per region for a national campaign")


def campaign_message(body: CampaignBody, scope: int) -> npb.Campaign:
    return npb.Campaign(
        name=body.name,
        behaviour=body.behaviour,
        bonus_points=body.bonus_points,
        bonus_percent=body.bonus_percent,
        target=npb.TargetRule(
            kind=npb.TargetKind.Value(body.target.value), days=body.target_days, weekdays=body.target_weekdays
        ),
        starts_at=timestamp(body.starts_at),
        ends_at=timestamp(body.ends_at),
        budget_points=body.budget_points,
        scope=scope,  # type: ignore[arg-type]
    )


@router.get(
    "/v1/regions/{region_code}/campaigns", summary="The region's campaigns and their spend", response_model=CampaignList
)
def list_campaigns(context: Ctx, staff: CurrentStaff, region_code: RegionCode) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.incentives(region)
    response = context.regions.call("incentives", stub.ListCampaigns, npb.ListCampaignsRequest())
    return {"campaigns": [to_json(c) for c in response.campaigns]}


@router.post(
    "/v1/regions/{region_code}/campaigns",
    status_code=201,
    summary="Create a campaign in one region and fund its budget",
    response_model=CampaignResponse,
)
def create_campaign(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, body: CampaignBody
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.incentives(region)
    message = campaign_message(body, npb.CAMPAIGN_SCOPE_REGIONAL)
    request = npb.CreateCampaignRequest(request_id=idempotency_key(staff, rid), campaign=message)

    def run() -> Json:
        return {"campaign": to_json(context.regions.call("incentives", stub.CreateCampaign, request).campaign)}

    target = f"{region_code}/campaign:{body.name}"
    return audited(context, staff, rid, "campaign.create", target, run, details=body.model_dump(mode="json"))


@router.post(
    "/v1/campaigns",
    status_code=201,
    summary="Create a national campaign: the same campaign, with its own budget, in every region",
    response_model=NationalCampaigns,
)
def create_national_campaign(context: Ctx, staff: CurrentStaff, rid: RequestId, body: CampaignBody) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    message = campaign_message(body, npb.CAMPAIGN_SCOPE_NATIONAL)
    key = idempotency_key(staff, rid)

    def run() -> Json:
        codes, created = [], []
        # One request id per region, derived from the one the operator sent: a retry after a region failed
        # creates the missing ones and returns the others as they are.
        for code in context.regions.registry.sorted_codes():
            region = region_for(context, staff, code)
            stub = context.regions.incentives(region)
            request = npb.CreateCampaignRequest(request_id=f"{key}:{code}", campaign=message)
            codes.append(code)
            created.append(to_json(context.regions.call("incentives", stub.CreateCampaign, request).campaign))
        return {"region_codes": codes, "campaigns": created}

    return audited(
        context,
        staff,
        rid,
        "campaign.create_national",
        f"campaign:{body.name}",
        run,
        details=body.model_dump(mode="json"),
    )


OfferList = envelope(
    "OfferList",
    "The campaign offers a resident gets now, best fitting first, each with why; personalised: whether targeted "
    "offers are among them (false: only the untargeted offers everyone gets).",
    offers=list[npb.Offer],
    personalised=bool,
)
OfferResponse = envelope("OfferResponse", "The offer after the call.", offer=npb.Offer)
OfferId = Annotated[str, FastApiPath(pattern=r"^[A-Za-z0-9:._-]{1,128}$", description="Offer.offer_id from the list")]


@router.get(
    "/v1/accounts/{account_number}/offers",
    summary="A resident's campaign offers with why each is made (for residents served at the counter)",
    response_model=OfferList,
)
def list_offers(context: Ctx, staff: CurrentStaff, account_number: AccountNumber) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.incentives(region)
    request = npb.ListOffersRequest(account_number=account_number, max_results=MAX_OFFERS)
    response = context.regions.call("incentives", stub.ListOffers, request)
    return {"offers": [to_json(offer) for offer in response.offers], "personalised": response.personalised}


@router.post(
    "/v1/accounts/{account_number}/offers/{offer_id}/accept",
    summary="Accept an offer for the resident at the counter: their next event of its behaviour earns the bonus once",
    response_model=OfferResponse,
)
def accept_offer(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, offer_id: OfferId
) -> Json:
    staff.require(Role.COMMUNITY_STAFF, Role.OPERATOR, Role.ADMIN)
    region = account_home(context, staff, account_number)
    stub = context.regions.incentives(region)
    request = npb.AcceptOfferRequest(
        request_id=idempotency_key(staff, rid), account_number=account_number, offer_id=offer_id
    )

    def run() -> Json:
        return {"offer": to_json(context.regions.call("incentives", stub.AcceptOffer, request).offer)}

    return audited(context, staff, rid, "offer.accept", account_number, run, details={"offer_id": offer_id})
