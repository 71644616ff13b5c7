"""Reminders at the counter and for operators (ADR 0113): a resident switches reminders off or on; operators see the
dead-letter list and retry a reminder from it (identity_svc owns the outbox)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from carbon.identity.v1 import identity_service_pb2 as ipb
from ops_api.domain.staff import Role
from ops_api.routes.common import AccountNumber, Body, Json, PageSize, PageToken, RegionCode, account_home, region_for
from ops_api.routes.counter import COUNTER_ROLES
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import message_model
from ops_api.service.audit import audited
from ops_api.wire import to_json

router = APIRouter(tags=["reminders"])

PreferenceModel = message_model(ipb.SetReminderPreferenceResponse.DESCRIPTOR)
DeliveriesModel = message_model(ipb.ListReminderDeliveriesResponse.DESCRIPTOR)
DeliveryModel = message_model(ipb.ReminderDelivery.DESCRIPTOR)
NoticeKey = Annotated[str, Path(min_length=1, max_length=128, description="the reminder's notice key")]


class ReminderPreferenceBody(Body):
    reminders_off: bool = Field(description="true: the resident wants no reminders; false: reminders on again")


@router.put(
    "/v1/accounts/{account_number}/reminder-preference",
    summary="Switch a resident's reminders (expiring points, monthly digest) off or on, as asked at the counter",
    response_model=PreferenceModel,
)
def set_reminder_preference(
    context: Ctx, staff: CurrentStaff, rid: RequestId, account_number: AccountNumber, body: ReminderPreferenceBody
) -> Json:
    staff.require(*COUNTER_ROLES)
    region = account_home(context, staff, account_number)
    stub = context.regions.identity(region)
    request = ipb.SetReminderPreferenceRequest(account_number=account_number, reminders_off=body.reminders_off)

    def run() -> Json:
        return to_json(context.regions.call("identity", stub.SetReminderPreference, request))

    details = {"reminders_off": body.reminders_off}
    return audited(context, staff, rid, "identity.set_reminder_preference", account_number, run, details=details)


@router.get(
    "/v1/regions/{region_code}/dead-reminders",
    summary="Reminders whose every delivery attempt failed, oldest first",
    response_model=DeliveriesModel,
)
def list_dead_reminders(
    context: Ctx,
    staff: CurrentStaff,
    region_code: RegionCode,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    state: Annotated[str, Query(pattern=r"^(DEAD|PENDING|DELIVERED|SKIPPED)$")] = "DEAD",
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.identity(region)
    request = ipb.ListReminderDeliveriesRequest(
        state=ipb.ReminderDeliveryState.Value(f"REMINDER_DELIVERY_STATE_{state}"),
        page_size=page_size,
        page_token=page_token,
    )
    return to_json(context.regions.call("identity", stub.ListReminderDeliveries, request))


@router.post(
    "/v1/regions/{region_code}/dead-reminders/{notice_key}/retry",
    summary="Give a dead reminder a fresh retry budget",
    response_model=DeliveryModel,
)
def retry_dead_reminder(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, notice_key: NoticeKey
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.identity(region)
    request = ipb.RetryReminderDeliveryRequest(notice_key=notice_key)

    def run() -> Json:
        return to_json(context.regions.call("identity", stub.RetryReminderDelivery, request).delivery)

    return audited(
        context, staff, rid, "identity.retry_reminder", f"region:{region_code}", run, details={"notice_key": notice_key}
    )
