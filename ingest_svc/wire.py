"""carbon.ingest.v1 messages <-> domain values. The per-event paths (a batch's events in, its results out) are built
for speed, each beside a plain twin that a test holds equal."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc.domain.event_rows import EventRow
from ingest_svc.domain.events import AccountRef, Event, new_tuple
from ingest_svc.domain.fingerprints import ActivityHolder
from ingest_svc.domain.partners import Partner
from ingest_svc.domain.results import ACCEPTED, DUPLICATE, Result
from ingest_svc.domain.rules import Behaviour, RuleVersion
from ingest_svc.domain.scoring import DailyTotal
from ingest_svc.store.accepted_events import AcceptedEvent
from service_kit.errors import InvalidArgument
from service_kit.partner_signing import DOMAIN_TAG
from service_kit.wire import to_timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_U32 = struct.Struct(">I").pack
_NUMBERS = struct.Struct(">qqI").pack


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U32(len(raw)) + raw


def batch_events(request: pb.SubmitEventsRequest) -> tuple[list[Event], bytes]:
    """The request's events as domain values and its canonical (signed) bytes, in one pass over the messages.

    Byte for byte service_kit.partner_signing.canonical_bytes (a test holds them equal); this path is per event on
    every batch, so it skips the intermediate SignedEvent and protobuf's Python Timestamp.ToDatetime. Each event's
    encoding goes into the list as its pieces (lengths, UTF-8, numbers), joined once for the batch: no bytes
    concatenated per field. Event and AccountRef are built by new_tuple (domain/events.py).
    """
    messages = request.events
    parts = [DOMAIN_TAG, _str(request.partner_id), _str(request.batch_id), _U32(len(messages))]
    events: list[Event] = []
    append = events.append
    # Encodings of the fields a batch repeats (behaviour; region, evidence and tier together), once per distinct value.
    behaviours: dict[str, bytes] = {}
    tails: dict[tuple[str, str, str], bytes] = {}
    for message in messages:
        ref = message.account
        which = ref.WhichOneof("ref")
        event_id = message.event_id
        raw_id = event_id.encode("utf-8")
        if which == "account_number":
            number = ref.account_number
            raw = number.encode("utf-8")
            account = new_tuple(AccountRef, (number, "", "", ""))
            parts += (_U32(len(raw_id)), raw_id, b"\x01", _U32(len(raw)), raw)
        elif which == "binding":
            binding = ref.binding
            platform, user = binding.platform, binding.platform_user_id
            account = new_tuple(AccountRef, ("", platform, user, ""))
            parts += (_U32(len(raw_id)), raw_id, b"\x02", _str(platform), _str(user))
        elif which == "phone_number":
            phone = ref.phone_number
            account = new_tuple(AccountRef, ("", "", "", phone))
            parts += (_U32(len(raw_id)), raw_id, b"\x03", _str(phone))
        else:
            account = new_tuple(AccountRef, ("", "", "", ""))
            parts += (_U32(len(raw_id)), raw_id, b"\x00")
        stamp = message.occurred_at
        seconds, nanos = stamp.seconds, stamp.nanos
        # timedelta(days, seconds, microseconds) by position, cheaper than by keyword. No cache per distinct time: a
        # real feed's events happen at distinct instants.
        occurred = _EPOCH + timedelta(0, seconds, nanos // 1000) if message.HasField("occurred_at") else None
        quantity = message.quantity_milli
        region, evidence, tier = message.region_code, message.evidence_ref, message.tier
        behaviour = message.behaviour
        head = behaviours.get(behaviour)
        if head is None:
            head = behaviours[behaviour] = _str(behaviour)
        tail = tails.get((region, evidence, tier))
        if tail is None:
            tail = tails[(region, evidence, tier)] = _str(region) + _str(evidence) + _str(tier)
        parts += (head, _NUMBERS(quantity, seconds, nanos), tail)
        append(new_tuple(Event, (event_id, account, behaviour, quantity, occurred, region, evidence, tier)))
    return events, b"".join(parts)


def data_category(name: str) -> common_pb2.DataCategory.ValueType:
    """A catalog category name (TRANSIT) as the enum; UNSPECIFIED for "" (a behaviour no longer in the catalog)."""
    return common_pb2.DataCategory.Value(f"DATA_CATEGORY_{name}") if name else common_pb2.DATA_CATEGORY_UNSPECIFIED


def behaviour(value: Behaviour) -> pb.Behaviour:
    return pb.Behaviour(
        code=value.code,
        name_en=value.name_en,
        name_zh=value.name_zh,
        unit=value.unit,
        category=data_category(value.category),
        region_code=value.region_code,
    )


def rule(value: RuleVersion) -> pb.RuleVersion:
    return pb.RuleVersion(
        rule_version_id=value.rule_version_id,
        behaviour=value.behaviour,
        region_code=value.region_code,
        effective_from=to_timestamp(value.effective_from),
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


# Outcome names as wire enums: "" has none, and every name not listed is a rejection.
_OUTCOMES = {
    "": pb.EVENT_OUTCOME_UNSPECIFIED,
    ACCEPTED: pb.EVENT_OUTCOME_ACCEPTED,
    DUPLICATE: pb.EVENT_OUTCOME_DUPLICATE,
}


def outcome(name: str) -> pb.EventOutcome.ValueType:
    return _OUTCOMES.get(name, pb.EVENT_OUTCOME_REJECTED)


def event_result(result: Result) -> pb.EventResult:
    """One result as its message, every field given (proto3: an empty one is the same as unset)."""
    return pb.EventResult(
        event_id=result.event_id,
        outcome=outcome(result.outcome),
        points=result.points,
        co2e_grams=result.co2e_grams,
        ledger_transfer_id=result.transfer_id,
        reason=result.reason,
        message=result.message,
        first_outcome=outcome(result.first_outcome),
    )


def submit_response(results: Sequence[Result]) -> pb.SubmitEventsResponse:
    """The same message as one event_result per result, filled in place: no message per result is built and copied
    into the list, no call per result, and empty fields are left unset."""
    response = pb.SubmitEventsResponse()
    add = response.results.add
    outcome_of, rejected = _OUTCOMES.get, pb.EVENT_OUTCOME_REJECTED
    for event_id, outcome_name, points, co2e_grams, transfer_id, reason, text, first_outcome in results:
        message = add()
        message.event_id = event_id
        message.outcome = outcome_of(outcome_name, rejected)
        if points:
            message.points = points
        if co2e_grams:
            message.co2e_grams = co2e_grams
        if transfer_id:
            message.ledger_transfer_id = transfer_id
        if reason:
            message.reason = reason
        if text:
            message.message = text
        if first_outcome:
            message.first_outcome = outcome_of(first_outcome, rejected)
    return response


def partner(value: Partner) -> pb.Partner:
    return pb.Partner(
        partner_id=value.partner_id,
        name=value.name,
        kind=pb.PartnerKind.Value(f"PARTNER_KIND_{value.kind}"),
        allowed_behaviours=list(value.allowed_behaviours),
        allowed_regions=list(value.allowed_regions),
        rate_limit_per_second=value.rate_limit_per_second,
        active_key_id=value.active_key_id,
        active=value.active,
    )


def partner_from(message: pb.Partner) -> Partner:
    """A partner to register (its key and state are the service's to set)."""
    kind = pb.PartnerKind.Name(message.kind).removeprefix("PARTNER_KIND_")
    return Partner(
        partner_id=message.partner_id,
        name=message.name,
        kind="" if kind == "UNSPECIFIED" else kind,
        allowed_behaviours=tuple(message.allowed_behaviours),
        allowed_regions=tuple(message.allowed_regions),
        rate_limit_per_second=message.rate_limit_per_second,
    )


def statistics_row(total: DailyTotal) -> pb.StatisticsRow:
    return pb.StatisticsRow(
        region_code=total.region_code,
        behaviour=total.behaviour,
        day=day(total.day),
        events=total.events,
        points=total.points,
        co2e_grams=total.co2e_grams,
    )


def accepted_event(event: AcceptedEvent) -> pb.AcceptedEvent:
    return pb.AcceptedEvent(
        partner_id=event.partner_id,
        event_id=event.event_id,
        account_number=event.account_number,
        behaviour=event.behaviour,
        occurred_at=to_timestamp(event.occurred_at),
        points=event.points,
        co2e_grams=event.co2e_grams,
        accepted_at=to_timestamp(event.accepted_at),
    )


def activity_holder(holder: ActivityHolder | None) -> pb.ActivityHolder | None:
    if holder is None:
        return None
    return pb.ActivityHolder(region_code=holder.region_code, partner_id=holder.partner_id, event_id=holder.event_id)


def account_event(row: EventRow) -> pb.AccountEvent:
    """A stored event as ListAccountEvents shows it."""
    return pb.AccountEvent(
        partner_id=row.partner_id,
        event_id=row.event_id,
        behaviour=row.behaviour,
        region_code=row.region_code,
        occurred_at=to_timestamp(row.occurred_at),
        quantity_milli=row.quantity_milli,
        tier=row.tier,
        evidence_ref=row.evidence_ref,
        rule_version_id=row.rule_version_id,
        counted_milli=row.counted_milli,
        points=row.points,
        co2e_grams=row.co2e_grams,
        reason=row.reason,
        status=row.status,
        accepted_at=to_timestamp(row.accepted_at),
    )
