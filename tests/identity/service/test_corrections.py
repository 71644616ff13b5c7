"""Correcting the name and phone number on a real-name record (issue 17 item 3, ADR 0207): only the person, re-verified
by the ID number on record, through their platform or at a counter; audited by field name, never by value."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from identity_svc import store
from identity_svc.domain.accounts import Ref
from identity_svc.domain.corrections import Correction, validate_correction
from identity_svc.domain.real_name import NameMismatch
from identity_svc.server import IdentityServices
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from tests.identity.identity_helpers import OPS_API, SAMPLE_ID, VIA_ALIPAY, VIA_WECHAT, ZHEJIANG_ID, FakeClock, opening


def correction(services: IdentityServices, account: str, request_id: str = "fix-1", **kw: str) -> Correction:
    return validate_correction(
        request_id=request_id, account_number=account, id_number=kw.get("id_number", SAMPLE_ID),
        name=kw.get("name", ""), phone_number=kw.get("phone", ""), staff_id=kw.get("staff", ""),
        today=services.accounts.today_in_china(),
    )  # fmt: skip


def test_the_person_corrects_name_and_phone_and_the_change_is_audited(
    services: IdentityServices, clock: FakeClock
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    fixed = services.corrections.correct(
        correction(services, account, name="张三丰", phone="13998765432", staff="staff-7"),
        OPS_API,
    )
    assert (fixed.masked_name, fixed.masked_phone_number) == ("张**", "139****5432")
    assert services.accounts.resolve(Ref("phone_number", "13998765432")).account_number == account
    with pytest.raises(NotFound):
        services.accounts.resolve(Ref("phone_number", "13812345678"))
    # The corrected name is the one later openings must match.
    with pytest.raises(NameMismatch):
        services.accounts.open_account(opening("open-2", user="2088002"))
    services.accounts.open_account(opening("open-3", name="张三丰", user="2088003"))
    with services.accounts.engine.connect() as conn:
        rows = conn.execute(select(store.tables.record_corrections)).all()
    assert [(r.fields, r.staff_id, r.corrected_at) for r in rows] == [("name,phone_number", "staff-7", clock.now)]
    assert "张三丰" not in repr(rows) and "13998765432" not in repr(rows)


def test_a_correction_needs_the_id_number_on_record_and_the_persons_own_platform(services: IdentityServices) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    with pytest.raises(FailedPrecondition) as wrong_id:
        services.corrections.correct(correction(services, account, id_number=ZHEJIANG_ID, name="李四"), VIA_ALIPAY)
    assert wrong_id.value.reason == "REVERIFICATION_FAILED"
    with pytest.raises(PermissionDenied) as other_platform:
        services.corrections.correct(correction(services, account, name="李四"), VIA_WECHAT)
    assert other_platform.value.reason == "PLATFORM_NOT_BOUND"
    assert services.accounts.get_account(account).masked_name == "张*"
    fixed = services.corrections.correct(correction(services, account, name="李四"), VIA_ALIPAY)
    assert fixed.masked_name == "李*"


def test_a_retry_returns_the_account_and_another_body_is_refused(services: IdentityServices) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    first = services.corrections.correct(correction(services, account, name="李四"), VIA_ALIPAY)
    assert services.corrections.correct(correction(services, account, name="李四"), VIA_ALIPAY) == first
    with pytest.raises(AlreadyExists) as reused:
        services.corrections.correct(correction(services, account, name="王五"), VIA_ALIPAY)
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(InvalidArgument):
        correction(services, account, "fix-2")  # nothing to correct
