"""Reminder messages <-> domain values (the reminder RPCs' part of wire.py, kept apart as its own concern)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Row

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as pb
from identity_svc.domain.reminders import DeliveryState, Notice, ReminderKind
from service_kit.errors import InvalidArgument
from service_kit.wire import from_unix_us, to_timestamp


def notices_from(request: pb.QueueRemindersRequest) -> list[Notice]:
    return [_notice(message, index) for index, message in enumerate(request.notices)]


def _notice(message: pb.ReminderNotice, index: int) -> Notice:
    kinds = {int(kind): kind for kind in ReminderKind}
    if message.kind not in kinds:
        raise InvalidArgument(f"notices[{index}].kind", "must be EXPIRING_SOON or MONTHLY_DIGEST")
    expires_on = None
    if message.HasField("expires_on"):
        day = message.expires_on
        try:
            expires_on = date(day.year, day.month, day.day)
        except ValueError:
            raise InvalidArgument(f"notices[{index}].expires_on", "must be a calendar day") from None
    return Notice(
        notice_key=message.notice_key,
        account_number=message.account_number,
        kind=kinds[message.kind],
        points=message.points,
        expires_on=expires_on,
        period=message.period[:7],
    )


def delivery_state(value: int) -> DeliveryState | None:
    """The state a ListReminderDeliveries request names; None for UNSPECIFIED or a value this version lacks."""
    names: dict[int, DeliveryState] = {
        pb.REMINDER_DELIVERY_STATE_PENDING: DeliveryState.PENDING,
        pb.REMINDER_DELIVERY_STATE_DELIVERED: DeliveryState.DELIVERED,
        pb.REMINDER_DELIVERY_STATE_DEAD: DeliveryState.DEAD,
        pb.REMINDER_DELIVERY_STATE_SKIPPED: DeliveryState.SKIPPED,
    }
    return names.get(value)


def delivery_message(row: Row[Any]) -> pb.ReminderDelivery:
    notice = pb.ReminderNotice(
        notice_key=row.notice_key, account_number=row.account_number, kind=int(row.kind),  # type: ignore[arg-type]
        points=int(row.points),
        period=row.period,
    )  # fmt: skip
    if row.expires_on:
        day = date.fromisoformat(row.expires_on)
        notice.expires_on.CopyFrom(common_pb2.Date(year=day.year, month=day.month, day=day.day))
    return pb.ReminderDelivery(
        notice=notice,
        state=pb.ReminderDeliveryState.Value(f"REMINDER_DELIVERY_STATE_{row.state}"),  # type: ignore[arg-type]
        route=row.route,
        attempts=int(row.attempts),
        last_error=row.last_error,
        queued_at=to_timestamp(from_unix_us(int(row.queued_at_us))),
    )
