"""Real-name data: GB 11643 ID numbers, Chinese mobile numbers, names, and how each is masked."""

from __future__ import annotations

from datetime import date

import pytest

from identity_svc.domain.real_name import (
    id_check_char,
    mask_id_number,
    mask_name,
    mask_phone_number,
    validate_id_number,
    validate_name,
    validate_phone_number,
)
from service_kit.errors import InvalidArgument
from tests.identity.identity_helpers import SAMPLE_ID, with_check_digit

TODAY = date(2026, 3, 15)


def test_the_standards_sample_id_number_is_valid() -> None:
    assert id_check_char(SAMPLE_ID[:17]) == "X"
    assert validate_id_number(SAMPLE_ID, TODAY) == SAMPLE_ID


def test_every_single_character_change_of_the_sample_is_invalid() -> None:
    alphabet = "0123456789Xx"
    for position in range(18):
        for char in alphabet:
            if char == SAMPLE_ID[position]:
                continue
            changed = SAMPLE_ID[:position] + char + SAMPLE_ID[position + 1 :]
            with pytest.raises(InvalidArgument) as refused:
                validate_id_number(changed, TODAY)
            assert refused.value.reason == "INVALID_ID_NUMBER"
            assert refused.value.field == "id_number"


def test_a_refusal_names_the_rule_but_never_echoes_the_number() -> None:
    wrong = SAMPLE_ID[:17] + "1"
    with pytest.raises(InvalidArgument) as refused:
        validate_id_number(wrong, TODAY)
    assert wrong not in str(refused.value)
    assert "check digit" in refused.value.message


@pytest.mark.parametrize(
    ("first17", "rule"),
    [
        ("11010520260316002", "past"),  # tomorrow
        ("11010519490230002", "real date"),  # 30 February
        ("11010518991231002", "past"),  # before 1900
        ("99010519491231002", "area code"),
        ("11990519491231002", "area code"),
    ],
)
def test_birth_date_and_area_code_are_checked_behind_a_correct_check_digit(first17: str, rule: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_id_number(with_check_digit(first17), TODAY)
    assert rule in refused.value.message


@pytest.mark.parametrize(
    "malformed", ["", "11010519491231002", "11010519491231002XX", "1101051949123100２X", "Ｘ" * 18]
)
def test_malformed_id_numbers_are_refused(malformed: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_id_number(malformed, TODAY)


@pytest.mark.parametrize("phone", ["13812345678", "19912345678", "16612345678", "14712345678"])
def test_chinese_mobile_numbers_are_accepted(phone: str) -> None:
    assert validate_phone_number(phone) == phone


@pytest.mark.parametrize("phone", ["", "1381234567", "138123456789", "12012345678", "10012345678", "1381234567a"])
def test_other_phone_numbers_are_refused(phone: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_phone_number(phone)
    assert refused.value.reason == "INVALID_PHONE_NUMBER"


def test_names_allow_chinese_and_transliterated_names_only() -> None:
    assert validate_name(" 张三 ") == "张三"
    assert validate_name("买买提·艾力") == "买买提·艾力"
    for bad in ["", "   ", "张3", "a" * 51, "<script>"]:
        with pytest.raises(InvalidArgument):
            validate_name(bad)


def test_masks_show_only_what_the_contract_allows() -> None:
    assert mask_id_number("33010119900307123X") == "3301**********123X"
    assert mask_phone_number("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
