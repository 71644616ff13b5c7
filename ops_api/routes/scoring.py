"""How points are earned in a region: behaviours and rule versions, data partners, statistics (ingest_svc)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from carbon.ingest.v1 import ingest_service_pb2 as inpb
from ops_api.domain.requests import idempotency_key
from ops_api.domain.staff import Role
from ops_api.problems import invalid
from ops_api.routes.common import Body, Json, PageSize, PageToken, RegionCode, region_for
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope, message_model, page
from ops_api.service.audit import audited
from ops_api.wire import proto_date, timestamp, to_json

router = APIRouter(prefix="/v1/regions/{region_code}", tags=["behaviour rules, partners, statistics"])

BehaviourPage = page("BehaviourPage", "behaviours", inpb.Behaviour, "The behaviour catalog.")
RulePage = page("RulePage", "rules", inpb.RuleVersion, "Rule versions, newest first.")
RuleResponse = envelope("RuleResponse", "The rule version added.", rule=inpb.RuleVersion)
PartnerPage = page("PartnerPage", "partners", inpb.Partner, "The region's data partners.")
PartnerResponse = envelope("PartnerResponse", "One data partner.", partner=inpb.Partner)
RegisteredPartner = envelope(
    "RegisteredPartner", "The partner and its signing secret (shown this once).", partner=inpb.Partner, secret=str
)
RotatedSecret = message_model(inpb.RotatePartnerSecretResponse.DESCRIPTOR)
ChangedPartner = message_model(inpb.UpdatePartnerBehavioursResponse.DESCRIPTOR)
ScoreExplanation = message_model(inpb.ExplainScoreResponse.DESCRIPTOR)
StatisticsPage = page("StatisticsPage", "rows", inpb.StatisticsRow, "Rows per day, region and behaviour.")
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
PartnerId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


@router.get(
    "/behaviours", summary="The behaviour catalog (national plus this region's extras)", response_model=BehaviourPage
)
def list_behaviours(
    context: Ctx, staff: CurrentStaff, region_code: RegionCode, page_size: PageSize = 0, page_token: PageToken = ""
) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.ListBehavioursRequest(region_code=region_code, page_size=page_size, page_token=page_token)
    response = context.regions.call("ingest", stub.ListBehaviours, request)
    return {"behaviours": [to_json(b) for b in response.behaviours], "next_page_token": response.next_page_token}


@router.get("/rules", summary="Rule versions, newest first", response_model=RulePage)
def list_rules(
    context: Ctx,
    staff: CurrentStaff,
    region_code: RegionCode,
    behaviour: Annotated[str, Query(max_length=64)] = "",
    national: Annotated[bool, Query(description="the national rules instead of this region's own")] = False,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.ListRuleVersionsRequest(
        behaviour=behaviour, region_code="" if national else region_code, page_size=page_size, page_token=page_token
    )
    response = context.regions.call("ingest", stub.ListRuleVersions, request)
    return {"rules": [to_json(r) for r in response.rules], "next_page_token": response.next_page_token}


class RuleBody(Body):
    behaviour: Code
    national: bool = Field(default=False, description="a national rule (else this region's)")
    effective_from: datetime
    points_per_unit: int = Field(ge=0, le=100_000)
    co2e_milligrams_per_unit: int = Field(ge=0, le=10**12)
    co2e_source: str = Field(min_length=1, max_length=500)
    daily_cap_milli: int = Field(default=0, ge=0, le=10**9)
    max_quantity_milli: int = Field(default=0, ge=0, le=10**12)
    tier_points: dict[Annotated[str, Field(pattern=r"^tier_[1-9]$")], Annotated[int, Field(ge=0, le=100_000)]] = Field(
        default_factory=dict, max_length=9
    )


@router.post(
    "/rules", status_code=201, summary="Add a rule version, effective from a given time", response_model=RuleResponse
)
def create_rule(context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, body: RuleBody) -> Json:
    staff.require(Role.ADMIN)
    region = region_for(context, staff, region_code)
    rule = inpb.RuleVersion(
        behaviour=body.behaviour,
        region_code="" if body.national else region_code,
        effective_from=timestamp(body.effective_from),
        points_per_unit=body.points_per_unit,
        co2e_milligrams_per_unit=body.co2e_milligrams_per_unit,
        co2e_source=body.co2e_source,
        daily_cap_milli=body.daily_cap_milli,
        max_quantity_milli=body.max_quantity_milli,
        tier_points=body.tier_points,
    )
    stub = context.regions.ingest(region)
    request = inpb.CreateRuleVersionRequest(request_id=idempotency_key(staff, rid), rule=rule)

    def run() -> Json:
        return {"rule": to_json(context.regions.call("ingest", stub.CreateRuleVersion, request).rule)}

    target = f"{region_code}/rule:{body.behaviour}"
    return audited(context, staff, rid, "rule.create", target, run, details=body.model_dump(mode="json"))


class PartnerKind(StrEnum):
    TRANSIT_OPERATOR = "TRANSIT_OPERATOR"
    BIKE_SHARE = "BIKE_SHARE"
    CHARGER_NETWORK = "CHARGER_NETWORK"
    DELIVERY_PLATFORM = "DELIVERY_PLATFORM"
    SORTING_STATION = "SORTING_STATION"
    COMMUNITY_CENTRE = "COMMUNITY_CENTRE"
    RETAILER = "RETAILER"
    UTILITY = "UTILITY"


class PartnerBody(Body):
    partner_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    kind: PartnerKind
    allowed_behaviours: list[Code] = Field(min_length=1, max_length=100)
    allowed_regions: list[Annotated[str, Field(pattern=r"^[0-9]{6}$")]] = Field(min_length=1, max_length=50)
    rate_limit_per_second: int = Field(default=0, ge=0, le=100_000)


@router.get("/partners", summary="Data partners registered in the region", response_model=PartnerPage)
def list_partners(
    context: Ctx, staff: CurrentStaff, region_code: RegionCode, page_size: PageSize = 0, page_token: PageToken = ""
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.ListPartnersRequest(page_size=page_size, page_token=page_token)
    response = context.regions.call("ingest", stub.ListPartners, request)
    return {"partners": [to_json(p) for p in response.partners], "next_page_token": response.next_page_token}


@router.get("/partners/{partner_id}", summary="One data partner", response_model=PartnerResponse)
def get_partner(context: Ctx, staff: CurrentStaff, region_code: RegionCode, partner_id: PartnerId) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    response = context.regions.call("ingest", stub.GetPartner, inpb.GetPartnerRequest(partner_id=partner_id))
    return {"partner": to_json(response.partner)}


@router.post(
    "/partners",
    status_code=201,
    summary="Register a data partner; its secret is shown once",
    response_model=RegisteredPartner,
)
def register_partner(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, body: PartnerBody
) -> Json:
    staff.require(Role.ADMIN)
    region = region_for(context, staff, region_code)
    partner = inpb.Partner(
        partner_id=body.partner_id,
        name=body.name,
        kind=inpb.PartnerKind.Value(f"PARTNER_KIND_{body.kind.value}"),
        allowed_behaviours=body.allowed_behaviours,
        allowed_regions=body.allowed_regions,
        rate_limit_per_second=body.rate_limit_per_second,
    )
    stub = context.regions.ingest(region)
    request = inpb.RegisterPartnerRequest(request_id=idempotency_key(staff, rid), partner=partner)

    def run() -> Json:
        response = context.regions.call("ingest", stub.RegisterPartner, request)
        return {"partner": to_json(response.partner), "secret": response.secret}

    target = f"{region_code}/partner:{body.partner_id}"
    return audited(context, staff, rid, "partner.register", target, run, details=body.model_dump(mode="json"))


class PartnerBehavioursBody(Body):
    allowed_behaviours: list[Code] = Field(
        min_length=1, max_length=100, description="the behaviours the partner may report from now on (all of them)"
    )
    reason: str = Field(min_length=3, max_length=500, description="why; kept with the change and in the audit log")


@router.post(
    "/partners/{partner_id}/allowed-behaviours",
    summary="Change which behaviours a registered partner may report (the list is replaced; audited)",
    response_model=ChangedPartner,
)
def change_partner_behaviours(
    context: Ctx,
    staff: CurrentStaff,
    rid: RequestId,
    region_code: RegionCode,
    partner_id: PartnerId,
    body: PartnerBehavioursBody,
) -> Json:
    staff.require(Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.UpdatePartnerBehavioursRequest(
        request_id=idempotency_key(staff, rid),
        partner_id=partner_id,
        allowed_behaviours=body.allowed_behaviours,
        reason=body.reason,
    )

    def run() -> Json:
        return to_json(context.regions.call("ingest", stub.UpdatePartnerBehaviours, request))

    target = f"{region_code}/partner:{partner_id}"
    details = {"allowed_behaviours": ",".join(sorted(set(body.allowed_behaviours)))}
    return audited(context, staff, rid, "partner.change_behaviours", target, run, reason=body.reason, details=details)


@router.post(
    "/partners/{partner_id}/rotate-secret",
    summary="New signing secret; the old one has a grace period",
    response_model=RotatedSecret,
)
def rotate_partner_secret(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, partner_id: PartnerId
) -> Json:
    staff.require(Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.RotatePartnerSecretRequest(request_id=idempotency_key(staff, rid), partner_id=partner_id)

    def run() -> Json:
        return to_json(context.regions.call("ingest", stub.RotatePartnerSecret, request))

    return audited(context, staff, rid, "partner.rotate_secret", f"{region_code}/partner:{partner_id}", run)


@router.get(
    "/score-explanation",
    summary="Why an event scored what it did (rule version, factor, cap, consent)",
    response_model=ScoreExplanation,
)
def explain_score(
    context: Ctx,
    staff: CurrentStaff,
    region_code: RegionCode,
    partner_id: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")],
    event_id: Annotated[str, Query(min_length=1, max_length=128)],
) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.ExplainScoreRequest(partner_id=partner_id, event_id=event_id)
    return to_json(context.regions.call("ingest", stub.ExplainScore, request))


@router.get(
    "/statistics", summary="Events, points and grams of CO2e by behaviour and day", response_model=StatisticsPage
)
def get_statistics(
    context: Ctx,
    staff: CurrentStaff,
    region_code: RegionCode,
    from_day: date,
    to_day: date,
    behaviour: Annotated[str, Query(max_length=64)] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> Json:
    if to_day < from_day:
        raise invalid("to_day", "must not be before from_day")
    if (to_day - from_day).days > 366:
        raise invalid("to_day", "at most 366 days per query")
    region = region_for(context, staff, region_code)
    stub = context.regions.ingest(region)
    request = inpb.GetStatisticsRequest(
        region_code=region_code, from_day=proto_date(from_day), to_day=proto_date(to_day), behaviour=behaviour
    )
    rows = [to_json(row) for row in context.regions.call("ingest", stub.GetStatistics, request).rows]
    # GetStatistics is not paged; the API pages its rows by offset so every list here pages the same way.
    start = int(page_token) if page_token.isascii() and page_token.isdigit() and len(page_token) <= 9 else 0
    size = page_size or 500
    page = rows[start : start + size]
    more = start + size < len(rows)
    return {"rows": page, "next_page_token": str(start + size) if more else ""}
