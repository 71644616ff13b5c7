"""Hypothesis strategies for any request message, built from its descriptor: boundary values first (zero, extremes,
NUL, over-long strings, unknown enum numbers, Timestamps out of range) beside random ones, and garbage bytes."""

from __future__ import annotations

from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 3
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
_INTS = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}
# Values that look right to the services (account numbers, region codes, ids) beside ones that are wrong in every way.
_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "1100001234567890",
    "110000",
    "330000",
    "transit_trip",
    "k1",
    "-1",
    "99999999999999999999999",
    "x" * 129,
    "y" * 5000,
    "é漢字🙂",
    "' OR 1=1 --",
    "%",
    "..",
    "bus-co",
]
_TIMESTAMP_SECONDS = [0, -1, -62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800, *INT64]
_NANOS = [0, -1, 999_999_999, 1_000_000_000, *INT32]


def _integers(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    edges = [value for value in (0, 1, -1, 2, 100, 10_000, 2**31 - 1, 2**53, low, high) if low <= value <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _scalar(field: Any) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTS:
        return _integers(_INTS[kind])
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(_STRINGS), st.text(max_size=40))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, 12345, 2**31 - 1]))
    raise AssertionError(f"unexpected field type {kind}")


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message = message_factory.GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Timestamp" or descriptor.full_name == "google.protobuf.Duration":
        message.seconds = draw(st.one_of(st.sampled_from(_TIMESTAMP_SECONDS), st.integers(0, 2_000_000_000)))  # type: ignore[attr-defined]
        message.nanos = draw(st.one_of(st.sampled_from(_NANOS), st.integers(0, 999_999_999)))  # type: ignore[attr-defined]
        return message
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        _fill(draw, message, field, depth)
    return message


def _fill(draw: st.DrawFn, message: Message, field: Any, depth: int) -> None:
    is_message = field.type == FieldDescriptor.TYPE_MESSAGE
    if is_message and depth >= MAX_DEPTH:
        return
    target = getattr(message, field.name)
    if is_message and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        for _ in range(draw(st.integers(0, 2))):
            key = draw(_scalar(key_field))
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target[key].CopyFrom(draw(_message(value_field.message_type, depth + 1)))
            else:
                target[key] = draw(_scalar(value_field))
        return
    if field.is_repeated:
        for _ in range(draw(st.integers(0, 3))):
            if is_message:
                target.add().CopyFrom(draw(_message(field.message_type, depth + 1)))
            else:
                target.append(draw(_scalar(field)))
        return
    if is_message:
        target.CopyFrom(draw(_message(field.message_type, depth + 1)))
    else:
        setattr(message, field.name, draw(_scalar(field)))


def request_bytes(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """A request as bytes: a message of the type (mostly) or bytes that need not decode at all."""
    return st.one_of(
        _message(descriptor, 0).map(lambda message: message.SerializeToString()),
        st.binary(max_size=48),
    )
