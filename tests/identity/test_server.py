"""IdentityService over gRPC on a real port: translation, error statuses with reasons, no personal data in logs, and
the wiring build_services does from settings."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC

import grpc
import pytest
import redis

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as pb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc.domain.consents import Question
from identity_svc.server import SERVICE_NAME, IdentityServices, IdentityServiceServicer
from identity_svc.store.consent_cache import RedisConsentCache
from service_kit import identities
from service_kit.accounts import new_account_number
from service_kit.logs import JsonFormatter
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.identity.identity_helpers import (
    SAMPLE_ID,
    SHANGHAI_ID,
    ZHEJIANG_ID,
    FakeClock,
    MemoryLedger,
    granted_and_closed,
    opening,
    stamp,
)
from tests.service_identities import TRUST

ALIPAY = common_pb2.CHANNEL_INTERNET_PLATFORM


TRANSIT = common_pb2.DATA_CATEGORY_TRANSIT


@pytest.fixture
def server(services: IdentityServices) -> Iterator[RunningServer]:
    registration = Registration(
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServiceServicer(services), SERVICE_NAME
    )
    running = start_server(TRUST.server(Settings(service="identity_svc", port=0, max_workers=4)), [registration])
    yield running
    running.stop()


@pytest.fixture
def stub(server: RunningServer) -> Iterator[identity_service_pb2_grpc.IdentityServiceStub]:
    channel = TRUST.allowed_channel(server.address, "330000")
    try:
        yield identity_service_pb2_grpc.IdentityServiceStub(channel)
    finally:
        channel.close()


def _open(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
    request_id: str,
    id_number: str = SAMPLE_ID,
    user: str = "2088001",
    phone: str = "13812345678",
    name: str = "张三",
    platform: str = "alipay",
) -> pb.OpenAccountResponse:
    return stub.OpenAccount(
        pb.OpenAccountRequest(
            request_id=request_id,
            channel=ALIPAY,
            name=name,
            id_number=id_number,
            phone_number=phone,
            binding=common_pb2.ChannelBinding(platform=platform, platform_user_id=user),
        ),
        timeout=10,
    )


def test_opening_and_reading_an_account_over_grpc(stub: identity_service_pb2_grpc.IdentityServiceStub) -> None:
    opened = _open(stub, "r1")
    assert opened.created and opened.account.state == pb.ACCOUNT_STATE_OPEN
    fetched = stub.GetAccount(pb.GetAccountRequest(account_number=opened.account.account_number), timeout=10)
    assert fetched.account.masked_id_number == "1101**********002X"
    assert fetched.account.masked_phone_number == "138****5678"
    assert fetched.account.masked_name == "张*"
    assert fetched.account.opened_via == ALIPAY
    again = stub.OpenAccount(
        pb.OpenAccountRequest(
            request_id="r2",
            channel=common_pb2.CHANNEL_COMMUNITY_CENTRE,
            name="张三",
            id_number=SAMPLE_ID,
            phone_number="13812345678",
            community_centre_id="pudong-001",
            staff_id="staff-7",
        ),
        timeout=10,
    )
    assert not again.created and again.account.account_number == opened.account.account_number


def test_the_basic_view_reads_the_account_without_its_bindings(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
) -> None:
    opened = _open(stub, "r-basic")
    number = opened.account.account_number
    full = stub.GetAccount(pb.GetAccountRequest(account_number=number), timeout=10).account
    basic = stub.GetAccount(pb.GetAccountRequest(account_number=number, view=pb.ACCOUNT_VIEW_BASIC), timeout=10).account
    assert len(full.bindings) == 1 and list(basic.bindings) == []
    assert (basic.state, basic.person_key, basic.masked_name) == (full.state, full.person_key, full.masked_name)


def test_get_account_answers_a_consent_question_with_the_account(
    stub: identity_service_pb2_grpc.IdentityServiceStub, clock: FakeClock
) -> None:
    account = _open(stub, "r-asked").account.account_number
    stub.GrantConsent(
        pb.GrantConsentRequest(
            request_id="g-asked", account_number=account, category=TRANSIT, channel=ALIPAY, recorded_by="alipay"
        ),
        timeout=10,
    )

    def asked(category: common_pb2.DataCategory.ValueType, hours: int) -> pb.GetAccountResponse:
        request = pb.GetAccountRequest(
            account_number=account,
            view=pb.ACCOUNT_VIEW_BASIC,
            consent_category=category,
            consent_at=stamp(clock, hours=hours),
        )
        return stub.GetAccount(request, timeout=10)

    consented = asked(TRANSIT, 1)
    assert consented.account.state == pb.ACCOUNT_STATE_OPEN and consented.HasField("consent")
    assert (consented.consent.allowed, consented.consent.reason) == (True, "")
    before_grant = asked(TRANSIT, -1)
    assert (before_grant.consent.allowed, before_grant.consent.reason) == (False, "CONSENT_MISSING")
    other = asked(common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING, 1)
    assert (other.consent.allowed, other.consent.reason) == (False, "CONSENT_MISSING")
    plain = stub.GetAccount(pb.GetAccountRequest(account_number=account), timeout=10)
    assert not plain.HasField("consent")


def test_a_malformed_consent_question_of_get_account_is_refused_naming_its_field(
    stub: identity_service_pb2_grpc.IdentityServiceStub, clock: FakeClock
) -> None:
    unknown = new_account_number("330000")
    no_time = pb.GetAccountRequest(account_number=unknown, consent_category=TRANSIT)
    bad_category = pb.GetAccountRequest(
        account_number=unknown, consent_category=common_pb2.DataCategory.ValueType(999), consent_at=stamp(clock)
    )
    for request, field, reason in (
        (no_time, "consent_at", "INVALID_EVENT_TIME"),
        (bad_category, "consent_category", "INVALID_ARGUMENT"),  # the edge refuses an enum value it does not know
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetAccount(request, timeout=10)
        details = error_details(refused.value)
        assert (details.code, details.reason, details.metadata["field"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            field,
        )


def test_batch_get_accounts_answers_each_number_as_get_account_with_its_consent(
    stub: identity_service_pb2_grpc.IdentityServiceStub, services: IdentityServices, clock: FakeClock
) -> None:
    account, closed = granted_and_closed(services)
    unknown = new_account_number("330000")
    numbers = [account, unknown, closed, account]

    def batch(view: pb.AccountView.ValueType, hours: int | None) -> list[pb.AccountLookup]:
        request = pb.BatchGetAccountsRequest(account_numbers=numbers, view=view)
        if hours is not None:
            request.consent_category = TRANSIT
            request.consent_at.CopyFrom(stamp(clock, hours=hours))
        return list(stub.BatchGetAccounts(request, timeout=10).accounts)

    answered = batch(pb.ACCOUNT_VIEW_BASIC, 1)
    assert [lookup.found for lookup in answered] == [True, False, True, True]
    assert not answered[1].HasField("account") and not answered[1].HasField("consent")
    for lookup, number in zip(answered, numbers, strict=True):
        if lookup.found:
            alone = stub.GetAccount(
                pb.GetAccountRequest(
                    account_number=number,
                    view=pb.ACCOUNT_VIEW_BASIC,
                    consent_category=TRANSIT,
                    consent_at=stamp(clock, hours=1),
                ),
                timeout=10,
            )
            assert (lookup.account, lookup.consent) == (alone.account, alone.consent)
    assert answered[0].consent == pb.ConsentAnswer(allowed=True) and answered[0].HasField("consent")
    assert answered[2].account.state == pb.ACCOUNT_STATE_CLOSED and answered[2].account.masked_name == ""
    assert (answered[2].consent.allowed, answered[2].consent.reason) == (False, "ACCOUNT_CLOSED")
    before_grant = batch(pb.ACCOUNT_VIEW_BASIC, -1)[0].consent
    assert (before_grant.allowed, before_grant.reason) == (False, "CONSENT_MISSING")
    full = batch(pb.ACCOUNT_VIEW_FULL, None)
    assert len(full[0].account.bindings) == 1 and list(answered[0].account.bindings) == []
    assert not any(lookup.HasField("consent") for lookup in full)


def test_a_malformed_batch_get_accounts_is_refused_naming_its_field(
    stub: identity_service_pb2_grpc.IdentityServiceStub, clock: FakeClock
) -> None:
    good = new_account_number("330000")
    for request, field, reason in (
        (pb.BatchGetAccountsRequest(), "account_numbers", "BATCH_TOO_LARGE"),
        (pb.BatchGetAccountsRequest(account_numbers=[good] * 1_001), "account_numbers", "BATCH_TOO_LARGE"),
        (pb.BatchGetAccountsRequest(account_numbers=[good, "12345"]), "account_numbers[1]", "INVALID_ACCOUNT_NUMBER"),
        (
            pb.BatchGetAccountsRequest(account_numbers=[good], consent_category=TRANSIT),
            "consent_at",
            "INVALID_EVENT_TIME",
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.BatchGetAccounts(request, timeout=10)
        details = error_details(refused.value)
        assert (details.code, details.reason, details.metadata["field"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            field,
        )


def test_the_person_key_links_accounts_without_the_id_number(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
) -> None:
    opened = _open(stub, "r-key")
    person_key = opened.account.person_key
    fetched = stub.GetAccount(pb.GetAccountRequest(account_number=opened.account.account_number), timeout=10)
    assert fetched.account.person_key == person_key
    assert len(person_key) == 64 and SAMPLE_ID not in person_key
    found = stub.FindAccountsByPersonKey(pb.FindAccountsByPersonKeyRequest(person_key=person_key), timeout=10)
    assert [account.account_number for account in found.accounts] == [opened.account.account_number]


def test_bad_input_is_invalid_argument_naming_the_field(stub: identity_service_pb2_grpc.IdentityServiceStub) -> None:
    wrong_check_digit = SAMPLE_ID[:17] + "1"
    with pytest.raises(grpc.RpcError) as failed:
        _open(stub, "r1", id_number=wrong_check_digit)
    details = error_details(failed.value)
    assert (details.code, details.reason, details.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ID_NUMBER",
        "id_number",
    )
    assert wrong_check_digit not in details.message
    with pytest.raises(grpc.RpcError) as bad_phone:
        _open(stub, "r2", phone="12345678901")
    assert error_details(bad_phone.value).reason == "INVALID_PHONE_NUMBER"
    with pytest.raises(grpc.RpcError) as nothing:
        stub.ResolveAccount(pb.ResolveAccountRequest(), timeout=10)
    assert error_details(nothing.value).code == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_accounts_are_not_found(stub: identity_service_pb2_grpc.IdentityServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.ResolveAccount(pb.ResolveAccountRequest(id_number=ZHEJIANG_ID), timeout=10)
    details = error_details(failed.value)
    assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_ACCOUNT")


def test_batch_resolution_and_consent_checks_over_grpc(
    stub: identity_service_pb2_grpc.IdentityServiceStub, clock: FakeClock
) -> None:
    account = _open(stub, "r1").account.account_number
    resolved = stub.BatchResolveAccounts(
        pb.BatchResolveAccountsRequest(
            refs=[
                common_pb2.AccountRef(binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088001")),
                common_pb2.AccountRef(phone_number="13900000000"),
                common_pb2.AccountRef(account_number=account),
            ]
        ),
        timeout=10,
    )
    assert [(a.found, a.account_number) for a in resolved.accounts] == [(True, account), (False, ""), (True, account)]
    stub.GrantConsent(
        pb.GrantConsentRequest(
            request_id="g1", account_number=account, category=TRANSIT, channel=ALIPAY, recorded_by="alipay"
        ),
        timeout=10,
    )
    clock.advance(days=1)
    revoked = stub.RevokeConsent(
        pb.RevokeConsentRequest(
            request_id="v1", account_number=account, category=TRANSIT, channel=ALIPAY, recorded_by="resident"
        ),
        timeout=10,
    )
    assert revoked.consent.action == pb.CONSENT_ACTION_REVOKE
    answers = stub.CheckConsents(
        pb.CheckConsentsRequest(
            questions=[
                pb.ConsentQuestion(account_number=account, category=TRANSIT, at=stamp(clock, hours=-1)),
                pb.ConsentQuestion(account_number=account, category=TRANSIT, at=stamp(clock, hours=1)),
            ]
        ),
        timeout=10,
    ).answers
    assert [(a.allowed, a.reason) for a in answers] == [(True, ""), (False, "CONSENT_REVOKED")]
    listed = stub.ListConsents(pb.ListConsentsRequest(account_number=account, page_size=1), timeout=10)
    assert [c.action for c in listed.consents] == [pb.CONSENT_ACTION_REVOKE] and listed.next_page_token


def test_closing_with_points_needs_a_disposition_over_grpc(
    stub: identity_service_pb2_grpc.IdentityServiceStub, ledger: MemoryLedger
) -> None:
    account = _open(stub, "r1").account.account_number
    ledger.balances[account] = 500
    with pytest.raises(grpc.RpcError) as refused:
        stub.CloseAccount(pb.CloseAccountRequest(request_id="c1", account_number=account, requested_by="r"), timeout=10)
    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "POINTS_DISPOSITION_REQUIRED")
    closed = stub.CloseAccount(
        pb.CloseAccountRequest(
            request_id="c2", account_number=account, points_disposition=pb.POINTS_DISPOSITION_DONATE, requested_by="r"
        ),
        timeout=10,
    )
    assert (closed.account.state, closed.disposed_points, closed.account.masked_name) == (
        pb.ACCOUNT_STATE_CLOSED,
        500,
        "",
    )


def test_no_personal_data_reaches_the_logs(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
    ledger: MemoryLedger,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    personal = [SAMPLE_ID, ZHEJIANG_ID, SHANGHAI_ID, "张三", "李四", "13812345678", "13712345678", "2088001", "wx-9"]
    caplog.set_level(logging.DEBUG)
    account = _open(stub, "r1").account.account_number
    with pytest.raises(grpc.RpcError):
        _open(stub, "hijack", name="李四", platform="wechat_pay", user="wx-9")
    _open(stub, "r2", user="2088001-b")
    _open(stub, "r3", id_number=ZHEJIANG_ID, user="z", phone="13712345678")
    for failing in (SAMPLE_ID[:17] + "1", SHANGHAI_ID[:17] + ("0" if SHANGHAI_ID[17] != "0" else "1")):
        with pytest.raises(grpc.RpcError) as refused:
            _open(stub, "bad", id_number=failing)
        personal.append(failing)
        assert failing not in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError):
        stub.ResolveAccount(pb.ResolveAccountRequest(id_number=SHANGHAI_ID), timeout=10)
    stub.ResolveAccount(pb.ResolveAccountRequest(phone_number="13812345678"), timeout=10)
    stub.GrantConsent(
        pb.GrantConsentRequest(
            request_id="g1", account_number=account, category=TRANSIT, channel=ALIPAY, recorded_by="alipay"
        ),
        timeout=10,
    )
    ledger.balances[account] = 10
    stub.CloseAccount(
        pb.CloseAccountRequest(
            request_id="c1", account_number=account, points_disposition=pb.POINTS_DISPOSITION_FORFEIT, requested_by="r"
        ),
        timeout=10,
    )
    formatter = JsonFormatter("identity_svc", "330000")
    lines = [formatter.format(record) for record in caplog.records]
    assert any("account opened" in line for line in lines)  # the flow did log
    everything = "\n".join(lines) + "\n".join(json.dumps(record.__dict__, default=str) for record in caplog.records)
    for value in personal:
        assert value not in everything, "personal data in the logs"


def test_consent_columns_answer_as_consent_questions(
    stub: identity_service_pb2_grpc.IdentityServiceStub, services: IdentityServices, clock: FakeClock
) -> None:
    account, closed = granted_and_closed(services)
    cycling = common_pb2.DATA_CATEGORY_CYCLING
    asked = [
        (account, TRANSIT, stamp(clock, hours=1)),
        (account, TRANSIT, stamp(clock, hours=-1)),  # before the grant
        (account, cycling, stamp(clock, hours=1)),
        (closed, TRANSIT, stamp(clock, hours=1)),
        ("3300001234567890", TRANSIT, stamp(clock, hours=1)),
        ("x", cycling, stamp(clock, hours=2)),
    ]
    by_message = stub.CheckConsents(
        pb.CheckConsentsRequest(
            questions=[pb.ConsentQuestion(account_number=n, category=c, at=t) for n, c, t in asked]
        ),
        timeout=10,
    ).answers

    by_column = stub.CheckConsentColumns(
        pb.CheckConsentColumnsRequest(
            account_numbers=[n for n, _c, _t in asked],
            categories=[c for _n, c, _t in asked],
            at_us=[t.seconds * 1_000_000 + t.nanos // 1000 for _n, _c, t in asked],
        ),
        timeout=10,
    )

    assert list(zip(by_column.allowed, by_column.reasons, strict=True)) == [(a.allowed, a.reason) for a in by_message]
    assert by_column.reasons[:3] == ["", "CONSENT_MISSING", "CONSENT_MISSING"]


@pytest.mark.parametrize(
    ("categories", "at_us", "field", "reason"),
    [
        ([TRANSIT, TRANSIT], [1, 1, 1], "categories", "INVALID_ARGUMENT"),
        ([TRANSIT, TRANSIT, TRANSIT], [1, 1], "at_us", "INVALID_ARGUMENT"),
        # A number the enum does not declare is refused at the kit's edge, before the service (BadRequest).
        ([TRANSIT, TRANSIT, 99], [1, 1, 1], "categories[2]", "INVALID_ARGUMENT"),
        ([TRANSIT, TRANSIT, TRANSIT], [1, 0, 1], "at_us[1]", "INVALID_EVENT_TIME"),
        ([TRANSIT, TRANSIT, TRANSIT], [1, 2**62, 1], "at_us[1]", "INVALID_ARGUMENT"),
    ],
)
def test_malformed_consent_columns_are_refused_naming_the_entry(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
    categories: list[int],
    at_us: list[int],
    field: str,
    reason: str,
) -> None:
    request = pb.CheckConsentColumnsRequest(
        account_numbers=["1100001234567890"] * 3,
        categories=categories,  # type: ignore[arg-type]
        at_us=at_us,
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.CheckConsentColumns(request, timeout=10)
    details = error_details(caught.value)
    assert (details.code, details.metadata.get("field"), details.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        field,
        reason,
    )


@pytest.mark.redis
def test_a_configured_redis_url_puts_the_cache_in_redis_under_the_configured_prefix(
    engine: object, keys: object, clock: FakeClock, redis_url: str, redis_prefix: str
) -> None:
    from identity_svc.server import build_services
    from service_kit.settings import Settings

    env = {"CARBON_REDIS_URL": redis_url, "CARBON_IDENTITY_REDIS_PREFIX": redis_prefix}
    settings = Settings.from_env("identity_svc", env)
    services = build_services(settings, engine, keys=keys, clock=clock)  # type: ignore[arg-type]
    assert isinstance(services.consents.cache, RedisConsentCache)
    account = services.accounts.open_account(opening())[0].account_number
    services.consents.check([Question(account, TRANSIT, clock.now)])
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.exists(f"{redis_prefix}consent:{{{account}}}")
    finally:
        for key in client.scan_iter(f"{redis_prefix}*"):
            client.delete(key)


def test_a_name_mismatch_is_failed_precondition_and_names_no_account(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
) -> None:
    account = _open(stub, "r1").account.account_number
    with pytest.raises(grpc.RpcError) as refused:
        _open(stub, "hijack", name="李四", platform="wechat_pay", user="wx-9")
    details = error_details(refused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NAME_MISMATCH")
    assert account not in details.message + repr(details.metadata)
    resolved = stub.BatchResolveAccounts(
        pb.BatchResolveAccountsRequest(
            refs=[
                common_pb2.AccountRef(binding=common_pb2.ChannelBinding(platform="wechat_pay", platform_user_id="wx-9"))
            ]
        ),
        timeout=10,
    )
    assert not resolved.accounts[0].found


def test_bindings_are_listed_masked_over_grpc(
    stub: identity_service_pb2_grpc.IdentityServiceStub, clock: FakeClock
) -> None:
    account = _open(stub, "r1", user="2088001234").account.account_number
    _open(stub, "r2", platform="wechat_pay", user="wx-0077")

    listed = stub.ListBindings(pb.ListBindingsRequest(account_number=account), timeout=10)

    assert [(b.platform, b.masked_platform_user_id, b.channel) for b in listed.bindings] == [
        ("alipay", "20****34", ALIPAY),
        ("wechat_pay", "wx****77", ALIPAY),
    ]
    assert listed.bindings[0].bound_at.ToDatetime(tzinfo=UTC) == clock.now and not listed.next_page_token
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListBindings(pb.ListBindingsRequest(account_number=account, page_token="forged"), timeout=10)
    assert error_details(refused.value).reason == "INVALID_PAGE_TOKEN"


def test_a_resident_authorization_request_is_checked_before_anything_else_over_grpc(
    stub: identity_service_pb2_grpc.IdentityServiceStub,
) -> None:
    account = _open(stub, "r1").account.account_number
    request = pb.IssueResidentAuthorizationRequest(
        request_id="xfer-1", account_number=account, amount_points=100, to_account=new_account_number("110000")
    )
    with pytest.raises(grpc.RpcError) as malformed:
        stub.IssueResidentAuthorization(request, timeout=10)
    assert (error_details(malformed.value).reason, error_details(malformed.value).metadata["field"]) == (
        "INVALID_OPERATION",
        "operation",
    )
    request.operation = pb.RESIDENT_OPERATION_CROSS_REGION_TRANSFER
    with pytest.raises(grpc.RpcError) as refused:
        stub.IssueResidentAuthorization(request, timeout=10)  # as the ops API, naming no staff member
    assert error_details(refused.value).metadata["field"] == "staff_id"


def test_resident_authorizations_go_by_the_verified_caller_over_grpc(
    stub: identity_service_pb2_grpc.IdentityServiceStub, server: RunningServer
) -> None:
    """The gateway speaking for the resident's own platform, or the ops API for counter staff; nobody else."""
    account = _open(stub, "r1").account.account_number  # bound to alipay
    request = pb.IssueResidentAuthorizationRequest(
        request_id="xfer-1",
        account_number=account,
        amount_points=100,
        to_account=new_account_number("110000"),
        operation=pb.RESIDENT_OPERATION_CROSS_REGION_TRANSFER,
    )
    with TRUST.channel(server.address, identities.GATEWAY) as channel:
        gateway = identity_service_pb2_grpc.IdentityServiceStub(channel)
        issued = gateway.IssueResidentAuthorization(request, metadata=_forwarded("alipay"), timeout=10)
        with pytest.raises(grpc.RpcError) as other_platform:
            gateway.IssueResidentAuthorization(request, metadata=_forwarded("jd"), timeout=10)
    assert issued.authorization and issued.token_id
    assert error_details(other_platform.value).reason == "PLATFORM_NOT_BOUND"
    request.request_id, request.staff_id = "xfer-2", "staff-7"
    assert stub.IssueResidentAuthorization(request, timeout=10).authorization  # the ops API for counter staff
    ingest_channel = TRUST.channel(server.address, identities.regional("330000", "ingest"))
    with ingest_channel, pytest.raises(grpc.RpcError) as ingest:
        identity_service_pb2_grpc.IdentityServiceStub(ingest_channel).IssueResidentAuthorization(request, timeout=10)
    details = error_details(ingest.value)
    assert (details.code, details.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")


def _forwarded(platform: str) -> tuple[tuple[str, str], ...]:
    return (("x-carbon-caller", f"{platform}-zj"), ("x-carbon-caller-platform", platform))
