"""Account numbers: 16 digits = 6-digit home region (GB/T 2260) + 9 random digits + 1 Luhn check digit.

The region prefix lets the gateway route without a lookup (as an IBAN carries its country); the random middle
makes a number unguessable from anything personal; the check digit catches typing errors at the counter.
System accounts of a region's ledger are named "system:<kind>" and never leave that ledger.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

ACCOUNT_NUMBER_LENGTH = 16
REGION_CODE_LENGTH = 6
SYSTEM_PREFIX = "system:"


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


# A batch of numbers at once (the ledger checks every distinct account of a credit batch): the digits as byte values
# (doubled where Luhn doubles), all numbers end to end as one integer, 16 bytes a number. Multiplied by
# 0x0101...01 (16 one-bytes), the product's byte 15 places above a number's lowest byte is the sum of that number's
# 16 bytes: each product byte sums 16 consecutive bytes, at most 16 * 9 = 144, so no byte ever carries into the next.
_DIGIT_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED_VALUES = bytes.maketrans(bytes(range(10)), bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_SUM_OF_16_BYTES = int.from_bytes(b"\x01" * ACCOUNT_NUMBER_LENGTH, "big")
_MULTIPLE_OF_10 = bytes(0 if value % 10 == 0 else 1 for value in range(256))  # translate table: 0 when valid


def all_account_numbers(values: Collection[str]) -> bool:
    """Whether every value is an account number: `is_account_number` of each, in a few passes in C over all."""
    count = len(values)
    if count == 0:
        return True
    if min(map(len, values)) != ACCOUNT_NUMBER_LENGTH or max(map(len, values)) != ACCOUNT_NUMBER_LENGTH:
        return False
    joined = "".join(values)
    if not joined.isascii() or not joined.isdigit():
        return False
    digits = bytearray(joined.encode().translate(_DIGIT_VALUES))
    # Every number starts at an even offset (16 is even): its doubled positions are the even ones of the whole.
    digits[0::2] = digits[0::2].translate(_DOUBLED_VALUES)
    product = int.from_bytes(digits, "big") * _SUM_OF_16_BYTES
    sums = product.to_bytes(len(digits) + ACCOUNT_NUMBER_LENGTH - 1, "big")[ACCOUNT_NUMBER_LENGTH - 1 :: 16]
    return sums.translate(_MULTIPLE_OF_10).count(0) == count


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
