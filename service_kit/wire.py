"""Conversions between protobuf well-known types and Python values, shared by every servicer and client."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    """An aware datetime as a Timestamp; None stays None (an unset message field)."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    """A Timestamp as an aware UTC datetime."""
    return stamp.ToDatetime(tzinfo=UTC)


def optional_moment(message: Message, field: str) -> datetime | None:
    """The aware UTC datetime in message.<field>, or None when the field is unset."""
    if not message.HasField(field):
        return None
    return from_timestamp(getattr(message, field))
