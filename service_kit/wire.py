"""Conversions between protobuf well-known types and Python values, shared by every servicer and client."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import overload

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from service_kit.errors import BadRequest


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


# The instants a datetime can hold (0001-01-01 .. 9999-12-31 UTC), in microseconds since the Unix epoch.
MIN_UNIX_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
MAX_UNIX_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def check_unix_us(column: Sequence[int], field: str) -> None:
    """Refuses (INVALID_ARGUMENT naming the entry) a column of microsecond instants with one outside what a
    datetime holds: a request's int64 times are checked at the edge as Timestamps are (validation.py)."""
    if column and (min(column) < MIN_UNIX_US or max(column) > MAX_UNIX_US):
        wrong = [
            (f"{field}[{index}]", "must lie within 0001-01-01 and 9999-12-31 (UTC)")
            for index, value in enumerate(column)
            if not MIN_UNIX_US <= value <= MAX_UNIX_US
        ]
        raise BadRequest(wrong)


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
