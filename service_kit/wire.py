"""Conversions between protobuf well-known types and Python values, shared by every servicer and client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


@overload
def to_timestamp(moment: datetime) -> Timestamp: ...


@overload
def to_timestamp(moment: None) -> None: ...


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    """A datetime as a Timestamp (aware ones converted to UTC; naive ones taken as UTC); None stays None."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_unix_us(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch (the columnar encoding of an instant); exact,
    as Timestamp.FromDatetime is."""
    return (moment - _EPOCH) // _MICROSECOND


def from_unix_us(instant_us: int) -> datetime:
    """Microseconds since the Unix epoch as an aware UTC datetime (the inverse of to_unix_us)."""
    return _EPOCH + timedelta(microseconds=instant_us)


def from_timestamp(stamp: Timestamp) -> datetime:
    """A Timestamp as an aware UTC datetime."""
    return stamp.ToDatetime(tzinfo=UTC)


def optional_moment(message: Message, field: str) -> datetime | None:
    """The aware UTC datetime in message.<field>, or None when the field is unset."""
    if not message.HasField(field):
        return None
    return from_timestamp(getattr(message, field))
