"""Accounts and the channels that open them: the validated opening request, the masked view, references.

One person holds at most one account per region; every channel (internet platform, government app, community
centre) opens it or binds itself to the one that exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from identity_svc.domain.real_name import validate_id_number, validate_name, validate_phone_number
from service_kit.accounts import is_account_number
from service_kit.errors import InvalidArgument, NotFound

# PIPL art. 31: below this age a guardian consents for the person.
AGE_OF_CONSENT = 14
_PLATFORM_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
IDENTIFIER_MAX_CHARS = 128
PERSON_KEY_HEX_DIGITS = 64


class Channel(IntEnum):
    """Mirrors carbon.common.v1.Channel."""

    INTERNET_PLATFORM = 1
    GOVERNMENT_APP = 2
    COMMUNITY_CENTRE = 3


class AccountState(IntEnum):
    """Mirrors carbon.identity.v1.AccountState; CLOSING is internal and shows as CLOSED outside."""

    OPEN = 1
    CLOSED = 2
    CLOSING = 3


def public_state(state: int) -> AccountState:
    """The state a caller sees: an account being closed already scores nothing, so it shows as CLOSED."""
    return AccountState.OPEN if state == AccountState.OPEN else AccountState.CLOSED


def unknown_account() -> NotFound:
    return NotFound("UNKNOWN_ACCOUNT", "no such account in this region")


def validate_identifier(value: str, field_name: str, reason: str = "INVALID_ARGUMENT") -> str:
    """An opaque caller-chosen id (request id, platform user id, staff id): printable, bounded."""
    if not value or not value.strip():
        raise InvalidArgument(field_name, "is required", reason=reason)
    if len(value) > IDENTIFIER_MAX_CHARS or not value.isprintable():
        raise InvalidArgument(
            field_name, f"must be printable, at most {IDENTIFIER_MAX_CHARS} characters", reason=reason
        )
    return value


def validate_account_number(value: str, field_name: str = "account_number") -> str:
    if not is_account_number(value):
        raise InvalidArgument(field_name, "must be a 16-digit account number", reason="INVALID_ACCOUNT_NUMBER")
    return value


def validate_person_key(value: str) -> str:
    if len(value) != PERSON_KEY_HEX_DIGITS or any(char not in "0123456789abcdef" for char in value):
        raise InvalidArgument("person_key", "must be 64 lower-case hex digits", reason="INVALID_PERSON_KEY")
    return value


def validate_channel(value: int) -> Channel:
    if value not in Channel._value2member_map_:
        raise InvalidArgument("channel", "must be a known channel", reason="INVALID_CHANNEL")
    return Channel(value)


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
    # The guardian's account when the person is under 14 (ADR 0206); empty otherwise.
    guardian_account_number: str = ""


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
    guardian_account_number: str = "",
) -> Opening:
    validate_identifier(request_id, "request_id")
    if guardian_account_number:
        validate_account_number(guardian_account_number, "guardian_account_number")
    chosen = validate_channel(channel)
    at_centre = chosen is Channel.COMMUNITY_CENTRE
    if at_centre:
        _check_community_centre_fields(community_centre_id, staff_id, phone_number, binding)
    else:
        _check_platform_fields(binding, community_centre_id, staff_id)
    return Opening(
        request_id=request_id,
        channel=chosen,
        name=validate_name(name),
        id_number=validate_id_number(id_number, today),
        phone_number=validate_phone_number(phone_number) if phone_number else "",
        binding=binding,
        community_centre_id=community_centre_id if at_centre else "",
        staff_id=staff_id if at_centre else "",
        guardian_account_number=guardian_account_number,
    )


def _check_community_centre_fields(
    community_centre_id: str, staff_id: str, phone_number: str, binding: Binding | None
) -> None:
    """Staff open the account on site for a resident without a smartphone: the phone number is how they come back."""
    validate_identifier(community_centre_id, "community_centre_id")
    validate_identifier(staff_id, "staff_id")
    if not phone_number:
        raise InvalidArgument("phone_number", "is required at a community centre", reason="INVALID_PHONE_NUMBER")
    if binding is not None:
        raise InvalidArgument("binding", "is not used at a community centre", reason="INVALID_BINDING")


def _check_platform_fields(binding: Binding | None, community_centre_id: str, staff_id: str) -> None:
    """A platform or app opens for one of its users: the binding is how it names the account afterwards."""
    if binding is None:
        raise InvalidArgument("binding", "is required for this channel", reason="INVALID_BINDING")
    validate_platform(binding.platform)
    validate_identifier(binding.platform_user_id, "binding.platform_user_id", reason="INVALID_BINDING")
    if community_centre_id or staff_id:
        raise InvalidArgument("community_centre_id", "is only used at a community centre")


@dataclass(frozen=True)
class AccountView:
    """An account as it leaves the service: personal data masked."""

    account_number: str
    region_code: str
    state: AccountState
    masked_name: str
    masked_id_number: str
    masked_phone_number: str
    bindings: Sequence[Binding]
    opened_at: datetime
    closed_at: datetime | None
    opened_via: Channel
    # Pseudonymous and linkable across regions: for the gateway's directory and same-person checks, never shown.
    person_key: str = ""
    # Under 14 today (China Standard Time): consents are the guardian's, and nothing personalises (ADR 0206).
    minor: bool = False
    guardian_account_number: str = ""


@dataclass(frozen=True)
class Resolved:
    account_number: str
    state: AccountState


@dataclass(frozen=True)
class Ref:
    """One way of naming an account: kind is account_number, binding, phone_number or id_number."""

    kind: str
    value: str
    platform_user_id: str = ""
