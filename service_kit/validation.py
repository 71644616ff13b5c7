"""The checks every request passes at the edge, before any service code runs: values no field of any method may
hold, found by walking the message's descriptor (each service's wire.py adds what is particular to a field).

- Timestamps within 0001-01-01 .. 9999-12-31 with nanos 0..999,999,999 (google/protobuf/timestamp.proto), Durations
  within +-10,000 years with nanos of the seconds' sign: beyond them no conversion to a datetime or a column works.
- Enum values the enum declares: proto3 keeps an unknown number as it is, and no code expects one.
- Strings without NUL (PostgreSQL text cannot hold one) and no longer than their kind allows: identifiers (names
  ending in "_id", "_ids", "_number", "_code", "_token" and "request_id") at most MAX_ID_CHARS, which is the widest id
  column; any other string at most MAX_TEXT_CHARS. Narrower bounds are the service's (wire.py) to check.

Every violation is reported (google.rpc.BadRequest), each with its field path, e.g. "events[3].occurred_at.seconds".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from service_kit.errors import BadRequest

# google/protobuf/timestamp.proto: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
# google/protobuf/duration.proto: about +-10,000 years.
MAX_DURATION_SECONDS = 315_576_000_000
MAX_NANOS = 999_999_999
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 4_096
# A page token is ours (service_kit/paging.py) and never longer than this.
MAX_PAGE_TOKEN_CHARS = 512
_ID_SUFFIXES = ("_id", "_ids", "_number", "_numbers", "_code", "_codes")

Violation = tuple[str, str]
Check = Callable[[Message, str, list[Violation]], None]


def violations(message: Message) -> list[Violation]:
    """Every (field path, what is wrong) in `message`; empty when it passes."""
    if _passes(message):
        return []
    found: list[Violation] = []
    _check(message, "", found)
    return found


def mask_paths(paths: Iterable[str], allowed: Iterable[str], field: str = "update_mask") -> list[str]:
    """The paths of an update mask, each once, in order; BadRequest naming every path not in `allowed` (and an empty
    mask), before anything reads a field by a path's name."""
    permitted = set(allowed)
    chosen = list(dict.fromkeys(paths))
    if not chosen:
        raise BadRequest([(field, "name at least one field to change")])
    wrong = [
        (
            f"{field}[{index}]",
            f"{path[:64]!r} is not a field that can be changed; one of {', '.join(sorted(permitted))}",
        )
        for index, path in enumerate(chosen)
        if path not in permitted
    ]
    if wrong:
        raise BadRequest(wrong)
    return chosen


def _passes(message: Message) -> bool:
    """The common case, fast: no paths built, stops at the first violation."""
    plan = _plan(message.DESCRIPTOR)
    if plan.special is _timestamp:
        seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
        return bool(MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS and 0 <= nanos <= MAX_NANOS)
    if plan.special is not None:
        scratch: list[Violation] = []
        plan.special(message, "", scratch)
        return not scratch
    for field, value in message.ListFields():
        kind = plan.kinds.get(field.name)
        if kind is None:
            continue
        values = value if kind.repeated else (value,)
        if kind.message:
            if not all(_passes(item) for item in values):
                return False
        elif kind.known is not None:
            if not all(item in kind.known for item in values):
                return False
        elif kind.limit:
            # Whole columns at C speed, from a list: a repeated field may hold thousands of strings (a claim
            # batch's ids), and it makes a new Python object for an entry at every pass over it.
            items = list(values)
            if max(map(len, items)) > kind.limit or "\x00" in "".join(items):
                return False
        else:  # a map: the slow path looks at it
            return False
    return True


def _check(message: Message, prefix: str, found: list[Violation]) -> None:
    plan = _plan(message.DESCRIPTOR)
    if plan.special is not None:
        plan.special(message, prefix, found)
        return
    for field, value in message.ListFields():
        check = plan.fields.get(field.name)
        if check is not None:
            check(value, f"{prefix}{field.name}", found)


class _Kind:
    """What a field holds, for the fast pass: messages, enum values (known), or strings (limit); none of these is a
    map."""

    def __init__(self, field: Any) -> None:
        self.repeated = _is_repeated(field)
        self.message = field.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(field)
        self.known = (
            frozenset(value.number for value in field.enum_type.values)
            if field.type == FieldDescriptor.TYPE_ENUM
            else None
        )
        self.limit = _string_limit(field.name) if field.type == FieldDescriptor.TYPE_STRING else 0


class _Plan:
    def __init__(self) -> None:
        self.special: Check | None = None
        self.fields: dict[str, Callable[[object, str, list[Violation]], None]] = {}
        self.kinds: dict[str, _Kind] = {}


@cache
def _plan(descriptor: Descriptor) -> _Plan:
    """What to check in a message type, worked out once per type: only the fields that can hold a bad value."""
    plan = _Plan()
    if descriptor.full_name == "google.protobuf.Timestamp":
        plan.special = _timestamp
        return plan
    if descriptor.full_name == "google.protobuf.Duration":
        plan.special = _duration
        return plan
    for field in descriptor.fields:
        single = _field_check(field)
        if single is None:
            continue
        plan.fields[field.name] = _repeated(single) if _is_repeated(field) else single
        plan.kinds[field.name] = _Kind(field)
    return plan


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated) and not _is_map(field)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _field_check(field: Any) -> Callable[[object, str, list[Violation]], None] | None:
    if _is_map(field):
        return _map_check(field)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_value
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = frozenset(value.number for value in field.enum_type.values)
        name = field.enum_type.full_name
        return lambda value, path, found: _enum(value, known, name, path, found)
    if field.type == FieldDescriptor.TYPE_STRING:
        limit = _string_limit(field.name)
        return lambda value, path, found: _string(value, limit, path, found)
    return None


def _string_limit(name: str) -> int:
    if name.endswith("page_token"):
        return MAX_PAGE_TOKEN_CHARS
    if name == "request_id" or name.endswith(_ID_SUFFIXES):
        return MAX_ID_CHARS
    return MAX_TEXT_CHARS


def _map_check(field: Any) -> Callable[[object, str, list[Violation]], None] | None:
    value_field = field.message_type.fields_by_name["value"]
    value_check = _field_check(value_field)

    def check(value: object, path: str, found: list[Violation]) -> None:
        assert isinstance(value, Mapping)
        for key, item in value.items():
            if isinstance(key, str):
                _string(key, MAX_ID_CHARS, f"{path}[{key[:32]!r}]", found)
            if value_check is not None:
                value_check(item, f"{path}[{str(key)[:32]!r}]", found)

    return check


def _repeated(single: Callable[[object, str, list[Violation]], None]) -> Callable[[object, str, list[Violation]], None]:
    def check(values: object, path: str, found: list[Violation]) -> None:
        assert isinstance(values, Iterable)
        for index, value in enumerate(values):
            single(value, f"{path}[{index}]", found)

    return check


def _message_value(value: object, path: str, found: list[Violation]) -> None:
    _check(value, f"{path}.", found)  # type: ignore[arg-type]


def _enum(value: object, known: frozenset[int], enum_name: str, path: str, found: list[Violation]) -> None:
    if value not in known:
        found.append((path, f"{value} is not a value of {enum_name}"))


def _string(value: object, limit: int, path: str, found: list[Violation]) -> None:
    text = str(value)
    if "\x00" in text:
        found.append((path, "must not contain a NUL character"))
    if len(text) > limit:
        found.append((path, f"at most {limit} characters"))


def _timestamp(stamp: Message, prefix: str, found: list[Violation]) -> None:
    seconds, nanos = stamp.seconds, stamp.nanos  # type: ignore[attr-defined]
    path = prefix.removesuffix(".")
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        found.append((f"{path}.seconds", "must lie within 0001-01-01 and 9999-12-31 (UTC)"))
    if not 0 <= nanos <= MAX_NANOS:
        found.append((f"{path}.nanos", "must be within 0..999,999,999"))


def _duration(duration: Message, prefix: str, found: list[Violation]) -> None:
    seconds, nanos = duration.seconds, duration.nanos  # type: ignore[attr-defined]
    path = prefix.removesuffix(".")
    if abs(seconds) > MAX_DURATION_SECONDS:
        found.append((f"{path}.seconds", "must be within +-315,576,000,000"))
    if abs(nanos) > MAX_NANOS or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        found.append((f"{path}.nanos", "must be within +-999,999,999 and of the seconds' sign"))
