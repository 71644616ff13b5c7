"""What a well-formed posting may name: accounts of this ledger, transfer codes, ids and the sizes of free text.

The system accounts themselves are named once for every service, in service_kit.accounts.
"""

from __future__ import annotations

from enum import IntEnum

from service_kit.accounts import (
    CAMPAIGN_PREFIX,
    REGION_CODE_LENGTH,
    SYSTEM_ACCOUNTS,
    SYSTEM_PREFIX,
    is_account_number,
    is_campaign_account,
    region_of,
)
from service_kit.errors import InvalidArgument


class TransferCode(IntEnum):
    """Mirrors carbon.ledger.v1.TransferCode (the wire values)."""

    EARN = 1
    REDEEM = 2
    EXPIRE = 3
    DONATE = 4
    TRANSFER_OUT = 5
    TRANSFER_IN = 6
    ADJUST = 7
    REFUND = 8
    FORFEIT = 9


VALID_CODES = frozenset(int(code) for code in TransferCode)

MAX_ID_LENGTH = 128
MAX_REFERENCE_LENGTH = 256
MAX_METADATA_ENTRIES = 32
MAX_METADATA_BYTES = 4096


def is_user_account(name: str, region_code: str) -> bool:
    """An account that holds lots and may not go negative: a 16-digit account number (Luhn-checked) whose home region
    is this ledger's, or a campaign's budget account (service_kit.accounts.CAMPAIGN_PREFIX)."""
    if name[:REGION_CODE_LENGTH] == region_code and is_account_number(name):
        return True
    return is_campaign_account(name)


def account_problem(name: str, region_code: str) -> str | None:
    """Why `name` cannot be an account of this ledger, or None when it can."""
    if not name:
        return "is required"
    if name.startswith(SYSTEM_PREFIX):
        return None if name in SYSTEM_ACCOUNTS else f"unknown system account {name!r}"
    if name.startswith(CAMPAIGN_PREFIX):
        return None if is_campaign_account(name) else "a campaign account is campaign:<1-23 of a-z, 0-9, ->"
    if not is_account_number(name):
        return "must be a 16-digit account number or system:<kind>"
    if region_of(name) != region_code:
        return f"belongs to region {region_of(name)}, not this ledger's region {region_code}"
    return None


def require_id(field: str, value: str) -> None:
    """An idempotency key a call names (refund, hold): present and within MAX_ID_LENGTH."""
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"is longer than {MAX_ID_LENGTH} characters")
