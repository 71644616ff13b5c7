"""The pure rules: GB 11643 ID numbers, phone numbers, names, masking, and consent decided from history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from identity_svc.domain import (
    AccountState,
    Binding,
    Channel,
    ConsentAction,
    ConsentEvent,
    ConsentTimeline,
    DataCategory,
    decide_consent,
    granted_categories,
    id_check_char,
    mask_id_number,
    mask_name,
    mask_phone_number,
    validate_id_number,
    validate_name,
    validate_opening,
    validate_phone_number,
)
from identity_svc.regions import is_known_area_code
from service_kit.errors import InvalidArgument
from tests.identity.identity_helpers import SAMPLE_ID, ZHEJIANG_ID, with_check_digit

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


def test_historical_area_codes_stay_valid() -> None:
    assert is_known_area_code("342622")  # 巢湖地区, abolished 2011
    assert is_known_area_code("510212")  # Chongqing while still in Sichuan
    assert is_known_area_code("110228")  # Beijing's former counties
    assert not is_known_area_code("000000")
    assert validate_id_number(with_check_digit("34262219800101001"), TODAY)


# Area codes read from the Ministry of Civil Affairs lists in github.com/cn/GB2260 (mca/<revision>.tsv).
VERIFIED_AREA_CODES = [
    ("110105", "北京市朝阳区, 198012 to 202012"),
    ("330106", "杭州市西湖区, 198012 to 202012"),
    ("310115", "上海市浦东新区, 199712 to 202012"),
    ("440305", "深圳市南山区, 199712 to 202012"),
    ("540602", "那曲市色尼区, 202012 (那曲地区 became a city after 2016)"),
    ("222121", "榆树县, filed under 长春市 as 2221xx in 198012"),
    ("222201", "通化市 of 通化地区, 198012 and 198412, gone by 198812"),
    ("512127", "灌县 of 温江地区, 198012 only"),
    ("652401", "伊宁市 of the 1980 伊犁哈萨克自治州 code 652400, 198012 only"),
    ("369001", "井冈山, 198012"),
    ("340901", "黄山市, 198412"),
    ("542721", "江孜县 of 江孜地区, 198412"),
    ("219001", "瓦房店市, province-administered 2190xx in 198812"),
    ("329001", "泰州市, province-administered 3290xx in 198412 and 198812"),
    ("513601", "华蓥市 of 广安地区, 199712"),
    ("513901", "资阳市 of 资阳地区, 199912"),
    ("500381", "江津市, GB2260-2002"),
]


@pytest.mark.parametrize(("code", "where"), VERIFIED_AREA_CODES)
def test_area_codes_found_in_the_civil_affairs_lists_are_accepted(code: str, where: str) -> None:
    assert is_known_area_code(code), where
    assert validate_id_number(with_check_digit(code + "19700101001"), TODAY)


@pytest.mark.parametrize("code", ["990000", "100000", "339901", "339999", "190000", "000000"])
def test_never_assigned_prefixes_are_refused(code: str) -> None:
    assert not is_known_area_code(code)
    with pytest.raises(InvalidArgument) as refused:
        validate_id_number(with_check_digit(code + "19700101001"), TODAY)
    assert "area code" in refused.value.message


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


def test_an_internet_platform_opening_needs_a_binding() -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_opening(
            request_id="r",
            channel=int(Channel.INTERNET_PLATFORM),
            name="张三",
            id_number=SAMPLE_ID,
            phone_number="",
            binding=None,
            community_centre_id="",
            staff_id="",
            today=TODAY,
        )
    assert refused.value.field == "binding"


def test_a_community_centre_opening_needs_centre_staff_and_phone() -> None:
    arguments = {
        "request_id": "r",
        "channel": int(Channel.COMMUNITY_CENTRE),
        "name": "王秀英",
        "id_number": ZHEJIANG_ID,
        "phone_number": "13912345678",
        "binding": None,
        "community_centre_id": "pudong-001",
        "staff_id": "staff-7",
        "today": TODAY,
    }
    assert validate_opening(**arguments).staff_id == "staff-7"  # type: ignore[arg-type]
    for missing in ("community_centre_id", "staff_id", "phone_number"):
        with pytest.raises(InvalidArgument) as refused:
            validate_opening(**{**arguments, missing: ""})  # type: ignore[arg-type]
        assert refused.value.field == missing
    with pytest.raises(InvalidArgument):
        validate_opening(**{**arguments, "binding": Binding("alipay", "u")})  # type: ignore[arg-type]


def test_unknown_channels_are_refused() -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_opening(
            request_id="r",
            channel=0,
            name="张三",
            id_number=SAMPLE_ID,
            phone_number="",
            binding=Binding("alipay", "u"),
            community_centre_id="",
            staff_id="",
            today=TODAY,
        )
    assert refused.value.reason == "INVALID_CHANNEL"


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _timeline(*events: tuple[DataCategory, ConsentAction, datetime]) -> ConsentTimeline:
    return ConsentTimeline(
        True, AccountState.OPEN, tuple(ConsentEvent(c, a, t, i) for i, (c, a, t) in enumerate(events))
    )


def test_an_event_before_a_revocation_still_scores_and_one_after_does_not() -> None:
    timeline = _timeline(
        (DataCategory.TRANSIT, ConsentAction.GRANT, T0),
        (DataCategory.TRANSIT, ConsentAction.REVOKE, T0 + timedelta(days=10)),
    )
    assert decide_consent(timeline, DataCategory.TRANSIT, T0 + timedelta(days=9)).allowed
    after = decide_consent(timeline, DataCategory.TRANSIT, T0 + timedelta(days=11))
    assert (after.allowed, after.reason) == (False, "CONSENT_REVOKED")
    assert decide_consent(timeline, DataCategory.TRANSIT, T0 + timedelta(days=10)).reason == "CONSENT_REVOKED"


def test_an_event_before_any_grant_has_no_consent() -> None:
    timeline = _timeline((DataCategory.TRANSIT, ConsentAction.GRANT, T0))
    assert decide_consent(timeline, DataCategory.TRANSIT, T0 - timedelta(seconds=1)).reason == "CONSENT_MISSING"
    assert decide_consent(timeline, DataCategory.CYCLING, T0 + timedelta(days=1)).reason == "CONSENT_MISSING"


def test_granting_again_after_a_revocation_restores_scoring_from_then_on() -> None:
    timeline = _timeline(
        (DataCategory.CYCLING, ConsentAction.GRANT, T0),
        (DataCategory.CYCLING, ConsentAction.REVOKE, T0 + timedelta(days=1)),
        (DataCategory.CYCLING, ConsentAction.GRANT, T0 + timedelta(days=3)),
    )
    assert not decide_consent(timeline, DataCategory.CYCLING, T0 + timedelta(days=2)).allowed
    assert decide_consent(timeline, DataCategory.CYCLING, T0 + timedelta(days=4)).allowed
    assert granted_categories(timeline, T0 + timedelta(days=4)) == [DataCategory.CYCLING]


def test_at_equal_times_the_later_record_wins() -> None:
    timeline = _timeline(
        (DataCategory.UTILITIES, ConsentAction.GRANT, T0),
        (DataCategory.UTILITIES, ConsentAction.REVOKE, T0),
    )
    assert decide_consent(timeline, DataCategory.UTILITIES, T0).reason == "CONSENT_REVOKED"


def test_unknown_and_closed_accounts_never_score() -> None:
    assert decide_consent(ConsentTimeline(False), DataCategory.TRANSIT, T0).reason == "UNKNOWN_ACCOUNT"
    closing = ConsentTimeline(
        True, AccountState.CLOSING, _timeline((DataCategory.TRANSIT, ConsentAction.GRANT, T0)).events
    )
    assert decide_consent(closing, DataCategory.TRANSIT, T0 + timedelta(days=1)).reason == "ACCOUNT_CLOSED"
