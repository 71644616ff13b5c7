"""Minors and guardians (issue 17 item 1, ADR 0206): a 13-year-old's account opens only with an adult guardian who is
the one asking; the guardian alone changes the child's consents; at the 14th birthday control passes, recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from identity_svc import store
from identity_svc.domain.accounts import Channel, Opening
from identity_svc.domain.consents import ConsentAction, ConsentRecord, DataCategory, Question
from identity_svc.domain.requesters import Requester
from identity_svc.server import IdentityServices
from identity_svc.service.guardians import hand_over_due
from service_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from tests.identity.identity_helpers import (
    OPS_API,
    SAMPLE_ID,
    VIA_ALIPAY,
    VIA_WECHAT,
    FakeClock,
    opening,
    with_check_digit,
)

# Born 2012-06-01: 13 on the tests' clock (2026-03-15), 14 from 2026-06-01 00:00 China time (2026-05-31 16:00 UTC).
CHILD_ID = with_check_digit("33010620120601123")
TRANSIT = int(DataCategory.TRANSIT)


def with_guardian(base: Opening, guardian: str) -> Opening:
    return replace(base, guardian_account_number=guardian)


def child_opening(request_id: str = "open-child", guardian: str = "") -> Opening:
    base = opening(request_id, id_number=CHILD_ID, name="张小明", phone="13912345678", platform="wechat_pay", user="c1")
    return with_guardian(base, guardian)


def open_guardian(services: IdentityServices) -> str:
    """An adult (born 1949) opened through alipay: alipay speaks for the guardian."""
    return services.accounts.open_account(opening("open-guardian", id_number=SAMPLE_ID))[0].account_number


def open_child(services: IdentityServices, guardian: str) -> str:
    view, created = services.accounts.open_account(child_opening(guardian=guardian), VIA_ALIPAY)
    assert created and view.minor and view.guardian_account_number == guardian
    return view.account_number


def consent(
    services: IdentityServices, account: str, request_id: str, requester: Requester, guardian: str = "", **kw: object
) -> ConsentRecord:
    return services.consents.record(
        kw.get("action", ConsentAction.GRANT),  # type: ignore[arg-type]
        request_id=request_id, account_number=account, category=TRANSIT, channel=int(Channel.INTERNET_PLATFORM),
        recorded_by=requester.platform or "staff-7", effective_at=None, guardian_account_number=guardian,
        requester=requester,
    )  # fmt: skip


def test_a_13_year_old_opens_only_with_a_guardian_who_is_the_one_asking(services: IdentityServices) -> None:
    guardian = open_guardian(services)
    with pytest.raises(FailedPrecondition) as alone:
        services.accounts.open_account(child_opening(), VIA_WECHAT)
    assert alone.value.reason == "GUARDIAN_REQUIRED"
    with pytest.raises(PermissionDenied) as by_child:
        # The child's own platform holds no binding on the guardian's account.
        services.accounts.open_account(child_opening(guardian=guardian), VIA_WECHAT)
    assert by_child.value.reason == "GUARDIAN_NOT_ACTING"
    child = open_child(services, guardian)
    assert services.accounts.get_account(child).guardian_account_number == guardian


def test_a_guardian_must_be_an_open_adult_account_here(services: IdentityServices) -> None:
    guardian = open_guardian(services)
    child = open_child(services, guardian)
    sibling_id = with_check_digit("33010620150101123")
    sibling = opening("open-sibling", id_number=sibling_id, name="张小红", phone="13912345670", user="s1")
    with pytest.raises(FailedPrecondition) as minor_guardian:
        services.accounts.open_account(with_guardian(sibling, child), OPS_API)
    assert minor_guardian.value.reason == "GUARDIAN_NOT_ELIGIBLE"
    unknown = "3300" + guardian[4:-1] + str((int(guardian[-1]) + 1) % 10)
    with pytest.raises((FailedPrecondition, InvalidArgument)):
        services.accounts.open_account(with_guardian(sibling, unknown), OPS_API)
    with pytest.raises(InvalidArgument) as adult:
        services.accounts.open_account(with_guardian(opening("open-2"), guardian), OPS_API)
    assert adult.value.field == "guardian_account_number"


def test_the_counter_opens_a_minors_account_with_the_guardian_present(services: IdentityServices) -> None:
    guardian = open_guardian(services)
    at_counter = opening(
        "open-counter", id_number=CHILD_ID, name="张小明", phone="13912345678",
        channel=Channel.COMMUNITY_CENTRE, centre="pudong-001", staff="staff-7",
    )  # fmt: skip
    view, _ = services.accounts.open_account(with_guardian(at_counter, guardian), OPS_API)
    assert view.minor and view.guardian_account_number == guardian


def test_consent_is_granted_by_the_guardian_and_refused_from_the_minor(
    services: IdentityServices, clock: FakeClock
) -> None:
    guardian = open_guardian(services)
    child = open_child(services, guardian)
    with pytest.raises(PermissionDenied) as from_minor:
        consent(services, child, "g-child", VIA_WECHAT)
    assert from_minor.value.reason == "GUARDIAN_NOT_ACTING"
    with pytest.raises(PermissionDenied):
        consent(services, child, "g-child-2", VIA_WECHAT, guardian=guardian)  # the child's platform, not the guardian's
    record = consent(services, child, "g-guardian", VIA_ALIPAY, guardian=guardian)
    assert record.guardian_account_number == guardian
    assert services.consents.check([Question(child, TRANSIT, clock.now)])[0].allowed
    clock.advance(days=1)
    consent(services, child, "v-guardian", VIA_ALIPAY, guardian=guardian, action=ConsentAction.REVOKE)
    assert services.consents.check([Question(child, TRANSIT, clock.now)])[0].reason == "CONSENT_REVOKED"


def test_at_the_14th_birthday_control_passes_to_the_holder_and_is_recorded(
    services: IdentityServices, clock: FakeClock
) -> None:
    guardian = open_guardian(services)
    child = open_child(services, guardian)
    clock.now = datetime(2026, 5, 31, 15, 59, tzinfo=UTC)  # 23:59 on 31 May in China: still 13
    assert services.accounts.get_account(child).minor
    with pytest.raises(PermissionDenied):
        consent(services, child, "g-early", VIA_WECHAT)
    clock.now = datetime(2026, 5, 31, 16, 0, tzinfo=UTC)  # midnight, 1 June in China: 14
    assert not services.accounts.get_account(child).minor
    with pytest.raises(InvalidArgument) as guardian_after:
        consent(services, child, "g-late", VIA_ALIPAY, guardian=guardian)
    assert guardian_after.value.field == "guardian_account_number"
    consent(services, child, "g-own", VIA_WECHAT)
    with services.accounts.engine.connect() as conn:
        row = conn.execute(select(store.tables.accounts).where(store.tables.accounts.c.account_number == child)).one()
    assert row.control_passed_at == clock.now and row.guardian_account_number == guardian


def test_a_sweep_records_the_hand_overs_due(services: IdentityServices, clock: FakeClock) -> None:
    guardian = open_guardian(services)
    child = open_child(services, guardian)
    with services.accounts.engine.begin() as conn:
        assert hand_over_due(conn, clock.now) == 0
    clock.now = datetime(2026, 6, 1, tzinfo=UTC)
    with services.accounts.engine.begin() as conn:
        assert hand_over_due(conn, clock.now) == 1
        assert hand_over_due(conn, clock.now) == 0
    assert services.accounts.get_account(child).minor is False
