"""Across regions, through the gateway: the region list, a person's directory, cross-region transfers, settlement.

Where the gateway has not built a call yet, its UNIMPLEMENTED comes back as 501 problem details.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from carbon.gateway.v1 import gateway_service_pb2 as gpb
from carbon.identity.v1 import identity_service_pb2 as ipb
from ops_api.domain.requests import compact_key
from ops_api.domain.staff import Role
from ops_api.problems import invalid
from ops_api.routes.common import AccountNumber, Body, Json, PageSize, PageToken, account_home, enum_name
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope, message_model, page
from ops_api.service.audit import audited
from ops_api.wire import timestamp, to_json

router = APIRouter(prefix="/v1", tags=["federation"])


class Region(BaseModel):
    region_code: str = Field(description="GB/T 2260 region code")
    name_en: str
    name_zh: str


RegionPage = page("RegionPage", "regions", Region, "The federated regions.")
DirectoryEntry = message_model(gpb.GetDirectoryEntryResponse.DESCRIPTOR)
TransferResponse = envelope(
    "CrossRegionTransferResponse", "One cross-region transfer.", transfer=gpb.CrossRegionTransfer
)
TransferPage = page("CrossRegionTransferPage", "transfers", gpb.CrossRegionTransfer, "Cross-region transfers.")
SettlementReport = message_model(gpb.GetSettlementReportResponse.DESCRIPTOR)
NationalFigures = message_model(gpb.GetNationalFiguresResponse.DESCRIPTOR)
ExpiringAhead = message_model(gpb.GetExpiringAheadResponse.DESCRIPTOR)


@router.get("/regions", summary="The federated regions and where their services listen", response_model=RegionPage)
def list_regions(context: Ctx, staff: CurrentStaff, page_size: PageSize = 0, page_token: PageToken = "") -> Json:
    codes = context.regions.registry.sorted_codes()
    start = int(page_token) if page_token.isascii() and page_token.isdigit() and len(page_token) <= 9 else 0
    size = page_size or 100
    regions = [
        {"region_code": e.region_code, "name_en": e.name_en, "name_zh": e.name_zh}
        for e in (context.regions.registry.regions[c] for c in codes[start : start + size])
    ]
    return {"regions": regions, "next_page_token": str(start + size) if start + size < len(codes) else ""}


@router.get(
    "/accounts/{account_number}/directory",
    summary="All of the person's accounts across regions",
    response_model=DirectoryEntry,
)
def get_directory_entry(context: Ctx, staff: CurrentStaff, account_number: AccountNumber) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    account_home(context, staff, account_number)
    stub = context.gateway.stub()
    request = gpb.GetDirectoryEntryRequest(account_number=account_number)
    return to_json(context.gateway.call(stub.GetDirectoryEntry, request))


class TransferBody(Body):
    from_account: str = Field(pattern=r"^[0-9]{16}$")
    to_account: str = Field(pattern=r"^[0-9]{16}$")
    amount_points: int = Field(ge=1, le=100_000_000)
    reason: str = Field(min_length=1, max_length=500, description="why ops moves these points, for the audit log")


@router.post(
    "/cross-region-transfers",
    status_code=201,
    summary="Move points between regions (via the gateway)",
    response_model=TransferResponse,
)
def create_cross_region_transfer(context: Ctx, staff: CurrentStaff, rid: RequestId, body: TransferBody) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    source = context.regions.home(body.from_account)
    context.regions.home(body.to_account)
    stub = context.gateway.stub()
    request = gpb.CreateCrossRegionTransferRequest(
        transfer_id=compact_key(staff, rid),
        from_account=body.from_account,
        to_account=body.to_account,
        amount_points=body.amount_points,
    )

    def run() -> Json:
        # The resident asked at the counter: the source region authorizes this one transfer, naming the staff member.
        authorization = ipb.IssueResidentAuthorizationRequest(
            request_id=request.transfer_id,
            account_number=body.from_account,
            operation=ipb.RESIDENT_OPERATION_CROSS_REGION_TRANSFER,
            amount_points=body.amount_points,
            to_account=body.to_account,
            staff_id=staff.user_id,
        )
        identity = context.regions.identity(source)
        issued = context.regions.call("identity", identity.IssueResidentAuthorization, authorization)
        request.resident_authorization = issued.authorization
        return {"transfer": to_json(context.gateway.call(stub.CreateCrossRegionTransfer, request).transfer)}

    target = f"{body.from_account}->{body.to_account}"
    details = {"amount_points": body.amount_points}
    return audited(context, staff, rid, "transfer.create", target, run, reason=body.reason, details=details)


@router.get(
    "/cross-region-transfers/{transfer_id}", summary="One cross-region transfer", response_model=TransferResponse
)
def get_cross_region_transfer(
    context: Ctx, staff: CurrentStaff, transfer_id: Annotated[str, Path(min_length=1, max_length=128)]
) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    stub = context.gateway.stub()
    request = gpb.GetCrossRegionTransferRequest(transfer_id=transfer_id)
    return {"transfer": to_json(context.gateway.call(stub.GetCrossRegionTransfer, request).transfer)}


class CrossRegionTransferState(StrEnum):
    """carbon.gateway.v1.CrossRegionTransferState by its full name, as responses show it."""

    CREATED = "CROSS_REGION_TRANSFER_STATE_CREATED"
    HELD = "CROSS_REGION_TRANSFER_STATE_HELD"
    CREDITED = "CROSS_REGION_TRANSFER_STATE_CREDITED"
    COMMITTED = "CROSS_REGION_TRANSFER_STATE_COMMITTED"
    RELEASED = "CROSS_REGION_TRANSFER_STATE_RELEASED"
    UNKNOWN = "CROSS_REGION_TRANSFER_STATE_UNKNOWN"


TransferState = Annotated[CrossRegionTransferState, enum_name("CROSS_REGION_TRANSFER_STATE_")]


@router.get("/cross-region-transfers", summary="Cross-region transfers of an account", response_model=TransferPage)
def list_cross_region_transfers(
    context: Ctx,
    staff: CurrentStaff,
    account_number: Annotated[str, Query(pattern=r"^[0-9]{16}$")] = "",
    state: TransferState | None = None,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    stub = context.gateway.stub()
    request = gpb.ListCrossRegionTransfersRequest(
        account_number=account_number,
        state=gpb.CrossRegionTransferState.Value(state.value) if state else 0,  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )
    response = context.gateway.call(stub.ListCrossRegionTransfers, request)
    return {"transfers": [to_json(t) for t in response.transfers], "next_page_token": response.next_page_token}


@router.get(
    "/settlement-report",
    summary="What regions owe each other for a period, gross and netted",
    response_model=SettlementReport,
)
def get_settlement_report(context: Ctx, staff: CurrentStaff, period_start: datetime, period_end: datetime) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    if period_start.tzinfo is None or period_end.tzinfo is None:
        raise invalid("period_start", "give times with a UTC offset, e.g. 2026-03-01T00:00:00+08:00")
    if period_end <= period_start:
        raise invalid("period_end", "must be after period_start")
    stub = context.gateway.stub()
    request = gpb.GetSettlementReportRequest(period_start=timestamp(period_start), period_end=timestamp(period_end))
    return to_json(context.gateway.call(stub.GetSettlementReport, request))


@router.get(
    "/national-figures",
    summary="A month's figures of every region and the national sums (accounts, points, CO2e, charity)",
    response_model=NationalFigures,
)
def get_national_figures(
    context: Ctx,
    staff: CurrentStaff,
    year: Annotated[int, Query(ge=2000, le=9999)],
    month: Annotated[int, Query(ge=1, le=12)],
) -> Json:
    """National figures are the national operators': community staff see their own region's dashboard instead."""
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    stub = context.gateway.stub()
    return to_json(context.gateway.call(stub.GetNationalFigures, gpb.GetNationalFiguresRequest(year=year, month=month)))


@router.get(
    "/expiring-ahead",
    summary="Points that will expire in each coming month unless spent, per region and nationally",
    response_model=ExpiringAhead,
)
def get_expiring_ahead(
    context: Ctx, staff: CurrentStaff, months_ahead: Annotated[int, Query(ge=1, le=36)] = 12
) -> Json:
    staff.require(Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    stub = context.gateway.stub()
    return to_json(context.gateway.call(stub.GetExpiringAhead, gpb.GetExpiringAheadRequest(months_ahead=months_ahead)))


class PersonalDataExport(BaseModel):
    """The copy of a person's data (PIPL art. 45, ADR 0208): every section in the format of
    docs/contract/personal-data-export.schema.json, whose items are the proto3 JSON of the matching gRPC messages."""

    format_version: str = Field(description="The export format's version (the schema's)")
    exported_at: str = Field(description="When the gateway assembled it (RFC 3339)")
    account_number: str = Field(description="The account it is of")
    account: dict[str, Any] = Field(description="identity Account: name, ID number and phone number masked")
    bindings: list[dict[str, Any]] = Field(description="identity BindingRecord, platform user ids masked")
    consents: list[dict[str, Any]] = Field(description="identity ConsentRecord: the whole history, newest first")
    events: list[dict[str, Any]] = Field(description="ingest AccountEvent: every event with its score")
    statement: list[dict[str, Any]] = Field(description="ledger StatementEntry: every entry")
    vouchers: list[dict[str, Any]] = Field(description="rewards Voucher: every voucher")
    cross_region_transfers: list[dict[str, Any]] = Field(description="gateway CrossRegionTransfer from or to it")


@router.get(
    "/accounts/{account_number}/personal-data-export",
    summary="A copy of everything held about the resident, handed over at the counter (PIPL art. 45, ADR 0208)",
    response_model=PersonalDataExport,
)
def export_personal_data(context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber) -> Json:
    staff.require(Role.COMMUNITY_STAFF, Role.OPERATOR, Role.ADMIN)
    account_home(context, staff, account_number)
    stub = context.gateway.stub()
    request = gpb.ExportPersonalDataRequest(account_number=account_number)

    def run() -> Json:
        document: Json = json.loads(context.gateway.call(stub.ExportPersonalData, request).document_json)
        return document

    # A copy of everything is a disclosure: the audit log records who handed whose data over, never the data.
    return audited(context, staff, rid, "account.export", account_number, run)
