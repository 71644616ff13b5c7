"""Opening requests per channel: what each channel must and must not carry."""

from __future__ import annotations

from datetime import date

import pytest

from identity_svc.domain.accounts import Binding, Channel, validate_opening
from service_kit.errors import InvalidArgument
from tests.identity.identity_helpers import SAMPLE_ID, ZHEJIANG_ID

TODAY = date(2026, 3, 15)


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
