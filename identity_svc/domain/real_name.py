"""Real-name data: resident ID numbers (GB 11643-1999), Chinese mobile numbers and names; validated and masked.

A refusal names the field and the rule broken, never the value: personal data must not reach logs or clients.
"""

from __future__ import annotations

import unicodedata
from datetime import date

from identity_svc.domain.area_codes import is_known_area_code
from service_kit.errors import FailedPrecondition, InvalidArgument

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


def birth_date(id_number: str) -> date:
    """The birth date an (already validated) ID number carries: characters 7-14, YYYYMMDD."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def birthday_at_age(born: date, years: int) -> date:
    """The day a person born on `born` turns `years`; someone born on 29 February turns it on 1 March in a common
    year (the day after 28 February, when a full year has passed)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def is_under(id_number: str, years: int, today: date) -> bool:
    """Whether the holder of the ID number has not reached `years` on `today` (a China Standard Time calendar day)."""
    return today < birthday_at_age(birth_date(id_number), years)


def validate_phone_number(value: str, field_name: str = "phone_number") -> str:
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        raise InvalidArgument(field_name, "must be 11 digits", reason="INVALID_PHONE_NUMBER")
    if value[:3] not in MOBILE_PREFIXES:
        raise InvalidArgument(field_name, "is not a Chinese mobile number prefix", reason="INVALID_PHONE_NUMBER")
    return value


def normalize_name(value: str) -> str:
    """The form names are kept and compared in: Unicode NFC, surrounding whitespace removed; nothing else changes
    (case, inner spaces and separators count, as they do on an ID card)."""
    return unicodedata.normalize("NFC", value.strip())


def validate_name(value: str, field_name: str = "name") -> str:
    """A real name: 1-50 letters (any script), with the separators of transliterated names (·, space, hyphen)."""
    name = normalize_name(value)
    if not name:
        raise InvalidArgument(field_name, "is required", reason="INVALID_NAME")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidArgument(field_name, f"must be at most {NAME_MAX_CHARS} characters", reason="INVALID_NAME")
    if not name[0].isalpha() or not all(char.isalpha() or char in _NAME_JOINERS for char in name):
        raise InvalidArgument(field_name, "must contain letters only", reason="INVALID_NAME")
    return name


def mask_id_number(id_number: str) -> str:
    """3301**********123X: region prefix and the last four, nothing that dates or places the person precisely."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:] if len(id_number) > 8 else ""


def mask_phone_number(phone_number: str) -> str:
    return phone_number[:3] + "****" + phone_number[-4:] if len(phone_number) == 11 else ""


def mask_name(name: str) -> str:
    return name[0] + "*" * max(1, len(name) - 1) if name else ""


class NameMismatch(FailedPrecondition):
    """An opening named a person who has an account here under another name. The account number is for the audit
    only: it never reaches the caller, who may be trying someone else's ID number."""

    def __init__(self, account_number: str) -> None:
        super().__init__("NAME_MISMATCH", "the name does not match the name on record for this ID number")
        self.account_number = account_number
