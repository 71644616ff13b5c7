"""carbon.ingest.v1 messages <-> domain values, and batch signing for partner clients (tests, bench, partners)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc.domain.events import AccountRef, Event
from ingest_svc.domain.rules import Behaviour, RuleVersion
from ingest_svc.domain.signing import SignedEvent, canonical_bytes, sign
from service_kit.errors import InvalidArgument


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def account_ref(ref: common_pb2.AccountRef) -> AccountRef:
    which = ref.WhichOneof("ref")
    if which == "account_number":
        return AccountRef(account_number=ref.account_number)
    if which == "binding":
        return AccountRef(platform=ref.binding.platform, platform_user_id=ref.binding.platform_user_id)
    if which == "phone_number":
        return AccountRef(phone_number=ref.phone_number)
    return AccountRef()


def event(message: pb.Event) -> Event:
    occurred = message.occurred_at.ToDatetime(tzinfo=UTC) if message.HasField("occurred_at") else None
    return Event(
        event_id=message.event_id,
        account=account_ref(message.account),
        behaviour=message.behaviour,
        quantity_milli=message.quantity_milli,
        occurred_at=occurred,
        region_code=message.region_code,
        evidence_ref=message.evidence_ref,
        tier=message.tier,
    )


def signed_event(message: pb.Event) -> SignedEvent:
    ref = message.account
    which = ref.WhichOneof("ref") or ""
    parts: tuple[str, ...] = ()
    if which == "account_number":
        parts = (ref.account_number,)
    elif which == "binding":
        parts = (ref.binding.platform, ref.binding.platform_user_id)
    elif which == "phone_number":
        parts = (ref.phone_number,)
    return SignedEvent(
        event_id=message.event_id,
        account_kind=which,
        account_parts=parts,
        behaviour=message.behaviour,
        quantity_milli=message.quantity_milli,
        occurred_seconds=message.occurred_at.seconds,
        occurred_nanos=message.occurred_at.nanos,
        region_code=message.region_code,
        evidence_ref=message.evidence_ref,
        tier=message.tier,
    )


def request_canonical_bytes(request: pb.SubmitEventsRequest) -> bytes:
    return canonical_bytes(request.partner_id, request.batch_id, [signed_event(e) for e in request.events])


def sign_request(request: pb.SubmitEventsRequest, key_id: str, secret: str) -> pb.SubmitEventsRequest:
    """Sets key_id and signature in place (what a partner does before sending) and returns the request."""
    request.key_id = key_id
    request.signature = sign(secret.encode("utf-8"), request_canonical_bytes(request))
    return request


def behaviour(value: Behaviour) -> pb.Behaviour:
    return pb.Behaviour(
        code=value.code,
        name_en=value.name_en,
        name_zh=value.name_zh,
        unit=value.unit,
        category=common_pb2.DataCategory.Value(f"DATA_CATEGORY_{value.category}"),
        region_code=value.region_code,
    )


def rule(value: RuleVersion) -> pb.RuleVersion:
    return pb.RuleVersion(
        rule_version_id=value.rule_version_id,
        behaviour=value.behaviour,
        region_code=value.region_code,
        effective_from=timestamp(value.effective_from),
        points_per_unit=value.points_per_unit,
        co2e_milligrams_per_unit=value.co2e_milligrams_per_unit,
        co2e_source=value.co2e_source,
        daily_cap_milli=value.daily_cap_milli,
        max_quantity_milli=value.max_quantity_milli,
        tier_points=dict(value.tier_points),
    )


def rule_from(message: pb.RuleVersion) -> RuleVersion:
    return RuleVersion(
        behaviour=message.behaviour,
        region_code=message.region_code,
        effective_from=message.effective_from.ToDatetime(tzinfo=UTC),
        points_per_unit=message.points_per_unit,
        co2e_milligrams_per_unit=message.co2e_milligrams_per_unit,
        co2e_unit="g CO2e per unit",
        co2e_source=message.co2e_source,
        daily_cap_milli=message.daily_cap_milli,
        max_quantity_milli=message.max_quantity_milli,
        tier_points=dict(message.tier_points),
    )


def day(value: date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def day_from(message: common_pb2.Date, field: str) -> date | None:
    if not (message.year or message.month or message.day):
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument(field, "not a calendar date") from None
