"""Account numbers: 16 digits = 6-digit home region (GB/T 2260) + 9 random digits + 1 Luhn check digit.

The region prefix lets the gateway route without a lookup (as an IBAN carries its country); the random middle
makes a number unguessable from anything personal; the check digit catches typing errors at the counter.
System accounts of a region's ledger are named "system:<kind>" and never leave that ledger.
"""

from __future__ import annotations

import secrets

ACCOUNT_NUMBER_LENGTH = 16
REGION_CODE_LENGTH = 6
SYSTEM_PREFIX = "system:"


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # doubled positions, counted from the right of the payload
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def is_account_number(value: str) -> bool:
    return (
        len(value) == ACCOUNT_NUMBER_LENGTH
        and value.isascii()
        and value.isdigit()
        and luhn_check_digit(value[:-1]) == value[-1]
    )


def region_of(account_number: str) -> str:
    """The home region code of a well-formed account number."""
    return account_number[:REGION_CODE_LENGTH]


def new_account_number(region_code: str) -> str:
    if len(region_code) != REGION_CODE_LENGTH or not region_code.isdigit():
        raise ValueError(f"region code must be 6 digits, got {region_code!r}")
    payload = region_code + "".join(secrets.choice("0123456789") for _ in range(9))
    return payload + luhn_check_digit(payload)


def is_system_account(name: str) -> bool:
    return name.startswith(SYSTEM_PREFIX)
