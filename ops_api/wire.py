"""Protobuf messages -> JSON the way people read them: integers stay integers, enums by name, days as YYYY-MM-DD."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from ops_api.problems import invalid


def to_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields: list[Any] = list(message.DESCRIPTOR.fields)
    for field in fields:
        value = getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(k): _scalar(value_field, v) for k, v in value.items()}
        elif field.is_repeated:  # type: ignore[attr-defined]
            out[field.name] = [_scalar(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            out[field.name] = _scalar(field, value) if message.HasField(field.name) else None
        else:
            out[field.name] = _scalar(field, value)
    return out


def _is_map(field: Any) -> bool:
    return bool(field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry)


def _scalar(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        described = field.enum_type.values_by_number.get(int(value))
        return described.name if described is not None else int(value)
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    if isinstance(value, Timestamp):
        return value.ToDatetime(tzinfo=UTC).isoformat() if (value.seconds or value.nanos) else None
    if isinstance(value, common_pb2.Date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}" if value.year else None
    if field.message_type.full_name == "google.protobuf.Duration":
        return value.ToTimedelta().total_seconds()
    return to_json(value)


def timestamp(moment: datetime, field: str = "time") -> Timestamp:
    """A moment as a Timestamp; naive means UTC; years outside 1971-2999 are refused as bad input."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1971 <= moment.year <= 2999:
        raise invalid(field, "must be between 1971 and 2999")
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def proto_date(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)
