"""The rules of identity_svc, pure Python: validating real-name data, masking it, deciding consent from history.

Error messages name the field and the rule broken, never the value: personal data must not reach logs or clients.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum

from identity_svc.regions import is_known_area_code
from service_kit.errors import InvalidArgument


class Channel(IntEnum):
    """Mirrors carbon.common.v1.Channel."""

    INTERNET_PLATFORM = 1
    GOVERNMENT_APP = 2
    COMMUNITY_CENTRE = 3


class DataCategory(IntEnum):
    """Mirrors carbon.common.v1.DataCategory."""

    TRANSIT = 1
    CYCLING = 2
    EV_CHARGING = 3
    FOOD_DELIVERY = 4
    SHOPPING = 5
    GARBAGE_SORTING = 6
    COMMUNITY_ACTIVITY = 7
    UTILITIES = 8


class AccountState(IntEnum):
    """Mirrors carbon.identity.v1.AccountState; CLOSING is internal and shows as CLOSED outside."""

    OPEN = 1
    CLOSED = 2
    CLOSING = 3


class ConsentAction(IntEnum):
    GRANT = 1
    REVOKE = 2


class PointsDisposition(IntEnum):
    UNSPECIFIED = 0
    DONATE = 1
    FORFEIT = 2
    NONE = 3


ID_NUMBER_LENGTH = 18
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_EARLIEST_BIRTH = date(1900, 1, 1)
# Chinese mobile number segments (the first three digits) allocated to operators, incl. virtual operators and IoT-free.
MOBILE_PREFIXES = frozenset(
    [f"13{d}" for d in range(10)]
    + ["145", "146", "147", "148", "149"]
    + [f"15{d}" for d in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
    + ["162", "165", "166", "167"]
    + [f"17{d}" for d in range(9)]
    + [f"18{d}" for d in range(10)]
    + [f"19{d}" for d in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
)
NAME_MAX_CHARS = 50
_PLATFORM_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
IDENTIFIER_MAX_CHARS = 128
_NAME_JOINERS = frozenset("·•.-' ")


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits (GB 11643-1999)."""
    total = sum(int(char) * weight for char, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def validate_id_number(value: str, today: date, field_name: str = "id_number") -> str:
    """Returns the ID number if valid; raises InvalidArgument(reason INVALID_ID_NUMBER) naming the rule broken."""

    def fail(message: str) -> InvalidArgument:
        return InvalidArgument(field_name, message, reason="INVALID_ID_NUMBER")

    if len(value) != ID_NUMBER_LENGTH or not value.isascii():
        raise fail("must be 18 characters")
    body, last = value[:17], value[17]
    if not body.isdigit() or not (last.isdigit() or last == "X"):
        raise fail("must be 17 digits followed by a digit or an upper-case X")
    if id_check_char(body) != last:
        raise fail("check digit does not match (GB 11643, ISO 7064 MOD 11-2)")
    if not is_known_area_code(body[:6]):
        raise fail("area code is not a known GB/T 2260 region")
    try:
        birth = date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        raise fail("birth date is not a real date") from None
    if not _EARLIEST_BIRTH <= birth <= today:
        raise fail("birth date must be in the past")
    return value


def validate_phone_number(value: str, field_name: str = "phone_number") -> str:
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        raise InvalidArgument(field_name, "must be 11 digits", reason="INVALID_PHONE_NUMBER")
    if value[:3] not in MOBILE_PREFIXES:
        raise InvalidArgument(field_name, "is not a Chinese mobile number prefix", reason="INVALID_PHONE_NUMBER")
    return value


def validate_name(value: str, field_name: str = "name") -> str:
    """A real name: 1-50 letters (any script), with the separators of transliterated names (·, space, hyphen)."""
    name = unicodedata.normalize("NFC", value.strip())
    if not name:
        raise InvalidArgument(field_name, "is required", reason="INVALID_NAME")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidArgument(field_name, f"must be at most {NAME_MAX_CHARS} characters", reason="INVALID_NAME")
    if not name[0].isalpha() or not all(char.isalpha() or char in _NAME_JOINERS for char in name):
        raise InvalidArgument(field_name, "must contain letters only", reason="INVALID_NAME")
    return name


def validate_identifier(value: str, field_name: str, reason: str = "INVALID_ARGUMENT") -> str:
    """An opaque caller-chosen id (request id, platform user id, staff id): printable, bounded."""
    if not value or not value.strip():
        raise InvalidArgument(field_name, "is required", reason=reason)
    if len(value) > IDENTIFIER_MAX_CHARS or not value.isprintable():
        raise InvalidArgument(
            field_name, f"must be printable, at most {IDENTIFIER_MAX_CHARS} characters", reason=reason
        )
    return value


def validate_platform(value: str, field_name: str = "binding.platform") -> str:
    if not _PLATFORM_CODE.match(value):
        raise InvalidArgument(field_name, "must be a lower-case platform code such as alipay", reason="INVALID_BINDING")
    return value


@dataclass(frozen=True)
class Binding:
    platform: str
    platform_user_id: str


@dataclass(frozen=True)
class Opening:
    """A validated request to open an account (or bind a channel to the person's existing one)."""

    request_id: str
    channel: Channel
    name: str
    id_number: str
    phone_number: str
    binding: Binding | None
    community_centre_id: str
    staff_id: str


def validate_opening(
    *,
    request_id: str,
    channel: int,
    name: str,
    id_number: str,
    phone_number: str,
    binding: Binding | None,
    community_centre_id: str,
    staff_id: str,
    today: date,
) -> Opening:
    validate_identifier(request_id, "request_id")
    if channel not in Channel._value2member_map_:
        raise InvalidArgument("channel", "must be a known channel", reason="INVALID_CHANNEL")
    chosen = Channel(channel)
    if chosen is Channel.COMMUNITY_CENTRE:
        validate_identifier(community_centre_id, "community_centre_id")
        validate_identifier(staff_id, "staff_id")
        if not phone_number:
            raise InvalidArgument("phone_number", "is required at a community centre", reason="INVALID_PHONE_NUMBER")
        if binding is not None:
            raise InvalidArgument("binding", "is not used at a community centre", reason="INVALID_BINDING")
    else:
        if binding is None:
            raise InvalidArgument("binding", "is required for this channel", reason="INVALID_BINDING")
        validate_platform(binding.platform)
        validate_identifier(binding.platform_user_id, "binding.platform_user_id", reason="INVALID_BINDING")
        if community_centre_id or staff_id:
            raise InvalidArgument("community_centre_id", "is only used at a community centre")
    return Opening(
        request_id=request_id,
        channel=chosen,
        name=validate_name(name),
        id_number=validate_id_number(id_number, today),
        phone_number=validate_phone_number(phone_number) if phone_number else "",
        binding=binding,
        community_centre_id=community_centre_id if chosen is Channel.COMMUNITY_CENTRE else "",
        staff_id=staff_id if chosen is Channel.COMMUNITY_CENTRE else "",
    )


def validate_category(value: int, field_name: str = "category") -> DataCategory:
    if value not in DataCategory._value2member_map_:
        raise InvalidArgument(field_name, "must be a known data category", reason="INVALID_CATEGORY")
    return DataCategory(value)


def mask_id_number(id_number: str) -> str:
    """3301**********123X: region prefix and the last four, nothing that dates or places the person precisely."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:] if len(id_number) > 8 else ""


def mask_phone_number(phone_number: str) -> str:
    return phone_number[:3] + "****" + phone_number[-4:] if len(phone_number) == 11 else ""


def mask_name(name: str) -> str:
    return name[0] + "*" * max(1, len(name) - 1) if name else ""


@dataclass(frozen=True)
class ConsentEvent:
    """One grant or revocation in an account's history, in recording order within equal effective times."""

    category: DataCategory
    action: ConsentAction
    effective_at: datetime
    sequence: int


@dataclass(frozen=True)
class ConsentTimeline:
    """What CheckConsents needs about one account: whether it can score at all, and its consent history."""

    known: bool
    state: AccountState = AccountState.OPEN
    events: Sequence[ConsentEvent] = field(default_factory=tuple)


@dataclass(frozen=True)
class ConsentVerdict:
    allowed: bool
    reason: str = ""


ALLOWED = ConsentVerdict(True)
# One instance per answer: a batch decides hundreds of questions and needs no new object for each.
UNKNOWN_ACCOUNT = ConsentVerdict(False, "UNKNOWN_ACCOUNT")
ACCOUNT_CLOSED = ConsentVerdict(False, "ACCOUNT_CLOSED")
CONSENT_MISSING = ConsentVerdict(False, "CONSENT_MISSING")
CONSENT_REVOKED = ConsentVerdict(False, "CONSENT_REVOKED")


def decide_consent(timeline: ConsentTimeline, category: DataCategory, at: datetime) -> ConsentVerdict:
    """May an event of `category` that happened at `at` score? The latest grant or revocation in force at `at` decides.

    An event before a revocation still scores (the consent held when it happened); one after it does not.
    """
    if not timeline.known:
        return UNKNOWN_ACCOUNT
    if timeline.state is not AccountState.OPEN:
        return ACCOUNT_CLOSED
    in_force: ConsentEvent | None = None
    for event in timeline.events:
        if event.category is not category or event.effective_at > at:
            continue
        if in_force is None or (event.effective_at, event.sequence) > (in_force.effective_at, in_force.sequence):
            in_force = event
    if in_force is None:
        return CONSENT_MISSING
    if in_force.action is ConsentAction.REVOKE:
        return CONSENT_REVOKED
    return ALLOWED


def granted_categories(timeline: ConsentTimeline, at: datetime) -> list[DataCategory]:
    """The categories whose consent is in force at `at` (closing revokes exactly these)."""
    return [category for category in DataCategory if decide_consent(timeline, category, at).allowed]
