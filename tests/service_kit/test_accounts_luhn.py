"""is_account_number's fixed-position Luhn answers exactly as the general Luhn over the payload (luhn_check_digit)."""

from __future__ import annotations

import random

from service_kit.accounts import is_account_number, luhn_check_digit


def _by_general_luhn(value: str) -> bool:
    """The definition is_account_number replaced: 16 ASCII digits whose last is the payload's check digit."""
    return len(value) == 16 and value.isascii() and value.isdigit() and luhn_check_digit(value[:-1]) == value[-1]


def test_every_check_digit_of_random_payloads_is_judged_as_by_the_general_luhn() -> None:
    rng = random.Random(20260315)
    for _ in range(5_000):
        payload = "".join(rng.choice("0123456789") for _ in range(15))
        for check in "0123456789":
            value = payload + check
            assert is_account_number(value) == _by_general_luhn(value), value


def test_edge_payloads_are_judged_as_by_the_general_luhn() -> None:
    payloads = ["0" * 15, "9" * 15, "5" * 15, "012345678901234", "987654321098765", "330000000000000"]
    payloads += [digit * 15 for digit in "12345678"]
    for payload in payloads:
        for check in "0123456789":
            assert is_account_number(payload + check) == _by_general_luhn(payload + check)


def test_malformed_values_are_refused_as_by_the_general_luhn() -> None:
    rng = random.Random(7)
    valid = "330000000000001"
    valid += luhn_check_digit(valid)
    odd_characters = ["X", " ", "-", "+", ".", "\x00", "\n", "٣", "３", "²", "é", "a", "/", ":", "\U0001f600"]
    values = ["", valid[:-1], valid + "0", valid * 2, " " + valid[1:], valid[:-1] + " "]
    for position in range(16):
        for character in odd_characters:
            values.append(valid[:position] + character + valid[position + 1 :])
    for _ in range(20_000):
        length = rng.choice([14, 15, 16, 16, 16, 17])
        alphabet = rng.choice(["0123456789", "0123456789X ", "0123456789٣３²"])
        values.append("".join(rng.choice(alphabet) for _ in range(length)))
    for value in values:
        assert is_account_number(value) == _by_general_luhn(value), repr(value)
    assert is_account_number(valid)
