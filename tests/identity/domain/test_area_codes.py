"""GB/T 2260 area codes of ID numbers: current and historical codes known, never-assigned ones refused."""

from __future__ import annotations

from datetime import date

import pytest

from identity_svc.domain.area_codes import is_known_area_code
from identity_svc.domain.real_name import validate_id_number
from service_kit.errors import InvalidArgument
from tests.identity.identity_helpers import with_check_digit

TODAY = date(2026, 3, 15)


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
