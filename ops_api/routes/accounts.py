"""Finding residents' accounts (masked), their balance, statement, lots and expiring points; opening an account at
a community centre."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from google.protobuf.duration_pb2 import Duration
from pydantic import Field

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from ops_api.domain.requests import idempotency_key
from ops_api.domain.staff import Role
from ops_api.problems import Problem, invalid
from ops_api.routes.common import AccountNumber, Body, Json, PageSize, PageToken, account_home
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope, page
from ops_api.service.audit import audited
from ops_api.wire import to_json

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

AccountList = envelope("AccountList", "The accounts found (personal data masked).", accounts=list[ipb.Account])
AccountResponse = envelope("AccountResponse", "One account (personal data masked).", account=ipb.Account)
BalanceResponse = envelope("BalanceResponse", "The account's balance.", balance=lpb.Balance)
StatementPage = page("StatementPage", "entries", lpb.StatementEntry, "Journal entries, newest first.")
LotPage = page("LotPage", "lots", lpb.Lot, "Point lots.")
ExpiringPage = page("ExpiringPointsPage", "expiring", lpb.ExpiringPoints, "Points expiring, by day.")
OpenedAccount = envelope(
    "OpenedAccount", "The account, and whether this call opened it (false: the person had one).",
    account=ipb.Account, created=bool,
)  # fmt: skip


@router.get("/search", summary="Find accounts by number, phone or channel binding (masked)", response_model=AccountList)
def search_accounts(
    context: Ctx,
    staff: CurrentStaff,
    account_number: Annotated[str, Query(pattern=r"^[0-9]{16}$")] = "",
    phone_number: Annotated[str, Query(pattern=r"^[0-9]{11}$")] = "",
    platform: Annotated[str, Query(max_length=32)] = "",
    platform_user_id: Annotated[str, Query(max_length=128)] = "",
    region_code: Annotated[str, Query(pattern=r"^[0-9]{6}$", description="search one region only")] = "",
) -> Json:
    given = [bool(account_number), bool(phone_number), bool(platform or platform_user_id)]
    if sum(given) != 1:
        raise invalid("account_number", "give exactly one of account_number, phone_number, platform+platform_user_id")
    if account_number:
        return {"accounts": [get_account(context, staff, account_number)["account"]]}
    if (platform and not platform_user_id) or (platform_user_id and not platform):
        raise invalid("platform_user_id", "a channel binding needs both platform and platform_user_id")
    if staff.role is Role.COMMUNITY_STAFF:
        region_code = region_code or staff.region_code
    codes = [region_code] if region_code else context.regions.registry.sorted_codes()
    found = []
    for code in codes:
        region = context.regions.region(code)
        staff.require_region(code, "region_code")
        stub = context.regions.identity(region)
        request = (
            ipb.ResolveAccountRequest(phone_number=phone_number)
            if phone_number
            else ipb.ResolveAccountRequest(
                binding=common_pb2.ChannelBinding(platform=platform, platform_user_id=platform_user_id)
            )
        )
        try:
            resolved = context.regions.call("identity", stub.ResolveAccount, request)
        except Problem as problem:
            if problem.status == 404:
                continue
            raise
        account = context.regions.call(
            "identity", stub.GetAccount, ipb.GetAccountRequest(account_number=resolved.account_number)
        )
        found.append(to_json(account.account))
    return {"accounts": found}


@router.get("/{account_number}", summary="One account, personal data masked", response_model=AccountResponse)
def get_account(context: Ctx, staff: CurrentStaff, account_number: AccountNumber) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.identity(region)
    response = context.regions.call("identity", stub.GetAccount, ipb.GetAccountRequest(account_number=account_number))
    return {"account": to_json(response.account)}


@router.get(
    "/{account_number}/balance", summary="Available, held and soon-expiring points", response_model=BalanceResponse
)
def get_balance(context: Ctx, staff: CurrentStaff, account_number: AccountNumber) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.ledger(region)
    response = context.regions.call("ledger", stub.GetBalance, lpb.GetBalanceRequest(account=account_number))
    return {"balance": to_json(response.balance)}


@router.get(
    "/{account_number}/statement", summary="Journal entries of the account, newest first", response_model=StatementPage
)
def list_statement(
    context: Ctx,
    staff: CurrentStaff,
    account_number: AccountNumber,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.ledger(region)
    request = lpb.ListStatementEntriesRequest(account=account_number, page_size=page_size, page_token=page_token)
    response = context.regions.call("ledger", stub.ListStatementEntries, request)
    return {"entries": [to_json(e) for e in response.entries], "next_page_token": response.next_page_token}


@router.get("/{account_number}/lots", summary="Point lots with their earned day and expiry", response_model=LotPage)
def list_lots(
    context: Ctx,
    staff: CurrentStaff,
    account_number: AccountNumber,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    include_empty: bool = False,
) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.ledger(region)
    request = lpb.ListLotsRequest(
        account=account_number, page_size=page_size, page_token=page_token, include_empty=include_empty
    )
    response = context.regions.call("ledger", stub.ListLots, request)
    return {"lots": [to_json(lot) for lot in response.lots], "next_page_token": response.next_page_token}


@router.get(
    "/{account_number}/expiring-points",
    summary="Points expiring within the next days, by day",
    response_model=ExpiringPage,
)
def list_expiring_points(
    context: Ctx,
    staff: CurrentStaff,
    account_number: AccountNumber,
    within_days: Annotated[int, Query(ge=1, le=3660)] = 30,
) -> Json:
    region = account_home(context, staff, account_number)
    stub = context.regions.ledger(region)
    request = lpb.ListExpiringPointsRequest(account=account_number, within=Duration(seconds=within_days * 86_400))
    response = context.regions.call("ledger", stub.ListExpiringPoints, request)
    return {"expiring": [to_json(e) for e in response.expiring], "next_page_token": ""}


class OpenAccountBody(Body):
    region_code: str = Field(pattern=r"^[0-9]{6}$")
    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(pattern=r"^[0-9]{17}[0-9Xx]$", description="18-character resident ID number")
    phone_number: str = Field(pattern=r"^[0-9]{11}$")
    centre_id: str = Field(
        default="", max_length=64, description="the community centre; community staff: their own (default)"
    )
    guardian_account_number: str = Field(
        default="",
        pattern=r"^([0-9]{16})?$",
        description="required for a resident under 14: the account of the guardian present at the counter (ADR 0206)",
    )


@router.post(
    "",
    status_code=201,
    summary="Open an account for a resident at a community centre (offline channel)",
    response_model=OpenedAccount,
)
def open_account(context: Ctx, staff: CurrentStaff, rid: RequestId, body: OpenAccountBody) -> Json:
    staff.require(Role.COMMUNITY_STAFF, Role.OPERATOR, Role.ADMIN)
    region = context.regions.region(body.region_code)
    staff.require_region(body.region_code, "region_code")
    centre = body.centre_id
    if staff.role is Role.COMMUNITY_STAFF:
        if centre and centre != staff.centre_id:
            raise Problem(403, "STAFF_CENTRE_MISMATCH", f"centre_id: staff work at centre {staff.centre_id}")
        centre = staff.centre_id
    if not centre:
        raise invalid("centre_id", "name the community centre where the resident was verified")
    request = ipb.OpenAccountRequest(
        request_id=idempotency_key(staff, rid),
        channel=common_pb2.CHANNEL_COMMUNITY_CENTRE,
        name=body.name,
        id_number=body.id_number.upper(),
        phone_number=body.phone_number,
        community_centre_id=centre,
        staff_id=staff.user_id,
        guardian_account_number=body.guardian_account_number,
    )
    stub = context.regions.identity(region)

    def run() -> Json:
        response = context.regions.call("identity", stub.OpenAccount, request)
        return {"account": to_json(response.account), "created": response.created}

    # Personal data stays out of the audit log: the row names the centre and region, the response the account.
    details = {"region_code": body.region_code, "centre_id": centre}
    if body.guardian_account_number:
        details["guardian_account_number"] = body.guardian_account_number
    return audited(context, staff, rid, "account.open", f"region:{body.region_code}", run, details=details)


class CorrectionBody(Body):
    id_number: str = Field(
        pattern=r"^[0-9]{17}[0-9Xx]$", description="the ID number on the record, read off the resident's ID card"
    )
    name: str = Field(default="", max_length=64, description="the corrected name; empty keeps it")
    phone_number: str = Field(default="", pattern=r"^([0-9]{11})?$", description="the corrected mobile number")


@router.post(
    "/{account_number}/corrections",
    summary="Correct a resident's name or phone number, re-verified on site by their ID card (ADR 0207)",
    response_model=AccountResponse,
)
def correct_record(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: CorrectionBody
) -> Json:
    staff.require(Role.COMMUNITY_STAFF, Role.OPERATOR, Role.ADMIN)
    region = account_home(context, staff, account_number)
    request = ipb.CorrectRealNameRecordRequest(
        request_id=idempotency_key(staff, rid),
        account_number=account_number,
        id_number=body.id_number.upper(),
        name=body.name,
        phone_number=body.phone_number,
        staff_id=staff.user_id,
    )
    stub = context.regions.identity(region)

    def run() -> Json:
        return {"account": to_json(context.regions.call("identity", stub.CorrectRealNameRecord, request).account)}

    # The audit row names the fields corrected, never their values.
    fields = ",".join(name for name in ("name", "phone_number") if getattr(body, name))
    return audited(context, staff, rid, "account.correct", account_number, run, details={"fields": fields})
