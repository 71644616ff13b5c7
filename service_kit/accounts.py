"""Account numbers: 16 digits = 6-digit home region (GB/T 2260) + 9 random digits + 1 Luhn check digit.

The region prefix lets the gateway route without a lookup (as an IBAN carries its country); the random middle
makes a number unguessable from anything personal; the check digit catches typing errors at the counter.
System accounts of a region's ledger are named "system:<kind>" and never leave that ledger: this module names
them once, for the ledger and for every service that posts to it.
"""

from __future__ import annotations

import secrets

ACCOUNT_NUMBER_LENGTH = 16
REGION_CODE_LENGTH = 6
SYSTEM_PREFIX = "system:"

# The system accounts of every region's ledger; the sum of all balances in a region, these included, is zero.
ISSUANCE_ACCOUNT = "system:issuance"  # debited by every earn
REDEMPTION_ACCOUNT = "system:redemption"  # credited by every redemption
EXPIRY_ACCOUNT = "system:expiry"  # credited by the expiry sweep
DONATION_ACCOUNT = "system:donation"  # credited by donations to charity projects
CLEARING_ACCOUNT = "system:clearing"  # the other side of cross-region transfers
ADJUSTMENT_ACCOUNT = "system:adjustment"  # the other side of four-eyes ops adjustments
SYSTEM_ACCOUNTS = frozenset(
    {ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT, EXPIRY_ACCOUNT, DONATION_ACCOUNT, CLEARING_ACCOUNT, ADJUSTMENT_ACCOUNT}
)


# Luhn's doubled digit (2d, minus 9 when over 9), by digit: a table keeps the hot path (every transfer's account
# names are checked) free of per-digit arithmetic.
_DOUBLED = {str(digit): (2 * digit - 9 if digit > 4 else 2 * digit) for digit in range(10)}
_PLAIN = {str(digit): digit for digit in range(10)}


def luhn_check_digit(digits: str) -> str:
    reversed_digits = digits[::-1]
    # Doubled positions are counted from the right of the payload: the 1st, 3rd, 5th ...
    total = sum(map(_DOUBLED.__getitem__, reversed_digits[0::2])) + sum(map(_PLAIN.__getitem__, reversed_digits[1::2]))
    return str((10 - total % 10) % 10)


# An account number's positions are fixed, so is its Luhn sum: the digits at even positions (0, 2, ... 14: the 1st,
# 3rd ... from the right of the 15-digit payload) are doubled, those at odd positions (the check digit among them)
# are not, and the number is valid when the sum is a multiple of 10. Summed as ASCII codes in C: a bytes table maps
# each digit's code to its doubled digit's code, and the 16 codes carry 16 * ord("0") = 768, so the sum of the codes
# ends in 8 exactly when the digits' sum ends in 0. The same answers as luhn_check_digit (a test compares them).
_DOUBLED_ASCII = bytes.maketrans(b"0123456789", b"0246813579")
_ASCII_ZEROS_REMAINDER = ACCOUNT_NUMBER_LENGTH * ord("0") % 10


def is_account_number(value: str) -> bool:
    if len(value) != ACCOUNT_NUMBER_LENGTH or not value.isascii() or not value.isdigit():
        return False
    codes = value.encode()
    return (sum(codes[0::2].translate(_DOUBLED_ASCII)) + sum(codes[1::2])) % 10 == _ASCII_ZEROS_REMAINDER


def region_of(account_number: str) -> str:
    """The home region code of a well-formed account number."""
    return account_number[:REGION_CODE_LENGTH]


def new_account_number(region_code: str) -> str:
    if len(region_code) != REGION_CODE_LENGTH or not region_code.isdigit():
        raise ValueError(f"region code must be 6 digits, got {region_code!r}")
    payload = region_code + "".join(secrets.choice("0123456789") for _ in range(9))
    return payload + luhn_check_digit(payload)


# A campaign's budget account in its region's ledger: "campaign:" and the campaign's id (1-23 characters of a-z,
# 0-9 and "-"). Incentives funds it from system:issuance and pays bonuses out of it. Unlike a system account it holds
# lots and may never go negative, so a campaign can never pay out more than its budget (ADR 0115).
CAMPAIGN_PREFIX = "campaign:"
_CAMPAIGN_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
MAX_CAMPAIGN_ID_LENGTH = 23


def campaign_account(campaign_id: str) -> str:
    return CAMPAIGN_PREFIX + campaign_id


def is_campaign_account(name: str) -> bool:
    campaign_id = name[len(CAMPAIGN_PREFIX) :]
    return (
        name.startswith(CAMPAIGN_PREFIX)
        and 0 < len(campaign_id) <= MAX_CAMPAIGN_ID_LENGTH
        and set(campaign_id) <= _CAMPAIGN_ID_CHARACTERS
    )


def is_system_account(name: str) -> bool:
    """Whether `name` is one of the system accounts (a name with the prefix but another kind is none)."""
    return name in SYSTEM_ACCOUNTS
