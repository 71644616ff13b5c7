"""A guardian in another region (issue 17 item 1, ADR 0209): a child's account in Zhejiang opens with a guardian whose
account is in Beijing, judged by Beijing through a real gateway (only the answer crosses); the guardian alone, through
their own platform, changes the child's consents; a Beijing account under 18 or unknown is refused by name; Beijing
not answering is UNAVAILABLE with retry advice, and nothing is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc.domain.real_name import id_check_char
from service_kit import identities
from service_kit.accounts import luhn_check_digit
from service_kit.status import error_details
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata
from tests.service_identities import TRUST

ZJ, BJ = "330000", "110000"
# Born 1 June 2013: 13 until 1 June 2027 (the federation runs on the system clock).
CHILD_BORN = "20130601"
TRANSIT = common_pb2.DATA_CATEGORY_TRANSIT


def id_born(born: str, serial: str) -> str:
    first17 = f"330106{born}{serial}"
    return first17 + id_check_char(first17)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path, [ZJ, BJ], ledgers_in_process=True)
    running = start_inprocess_gateway(federation)
    yield federation
    running.stop()
    federation.close()


def through_gateway(fed: Federation) -> identity_service_pb2_grpc.IdentityServiceStub:
    return identity_service_pb2_grpc.IdentityServiceStub(fed.gateway_channel())


def as_caller(caller: str, region: str) -> tuple[tuple[str, str | bytes], ...]:
    return (*metadata(caller), ("x-carbon-region", region))


def open_child(fed: Federation, guardian: str, request_id: str = "open-child", serial: str = "123") -> str:
    """A 13-year-old opened in Zhejiang through a national platform (alipay, bound to `guardian` too), naming
    `guardian`."""
    response = through_gateway(fed).OpenAccount(
        idpb.OpenAccountRequest(
            request_id=request_id,
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            name="张小明",
            id_number=id_born(CHILD_BORN, serial),
            phone_number=f"13912345{serial}",
            binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=f"child-{serial}"),
            guardian_account_number=guardian,
        ),
        metadata=as_caller("alipay", ZJ),
        timeout=10,
    )
    return str(response.account.account_number)


def open_in_beijing(fed: Federation, born: str, serial: str) -> str:
    """A Beijing account opened at Beijing's identity, bound to alipay."""
    response = fed.identity(BJ).OpenAccount(
        idpb.OpenAccountRequest(
            request_id=f"open-bj-{serial}",
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            name="李四",
            id_number=id_born(born, serial),
            phone_number=f"13800000{serial}",
            binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=f"bj-{serial}"),
        ),
        timeout=10,
    )
    return str(response.account.account_number)


def grant(fed: Federation, child: str, request_id: str, caller: str, guardian: str = "") -> idpb.ConsentRecord:
    response = through_gateway(fed).GrantConsent(
        idpb.GrantConsentRequest(
            request_id=request_id,
            account_number=child,
            category=TRANSIT,
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            recorded_by="alipay",
            guardian_account_number=guardian,
        ),
        metadata=metadata(caller),
        timeout=10,
    )
    return response.consent


def refused(call: object) -> tuple[str, str, dict[str, str], float | None]:
    with pytest.raises(grpc.RpcError) as caught:
        assert callable(call)
        call()
    details = error_details(caught.value)
    retry = details.retry_delay.total_seconds() if details.retry_delay is not None else None
    return details.code.name, details.reason, dict(details.metadata), retry


def test_a_child_opens_with_a_guardian_in_another_region_who_alone_consents(fed: Federation) -> None:
    guardian = open_in_beijing(fed, "19800101", "001")
    child = open_child(fed, guardian)
    assert child.startswith(ZJ)
    account = fed.identity(ZJ).GetAccount(idpb.GetAccountRequest(account_number=child), timeout=10).account
    assert account.minor and account.guardian_account_number == guardian
    record = grant(fed, child, "g-guardian", "alipay", guardian=guardian)
    assert record.guardian_account_number == guardian
    # The child's own regional platform, naming the guardian or not, is not the guardian.
    assert refused(lambda: grant(fed, child, "g-child", "zj", guardian=guardian))[:2] == (
        "PERMISSION_DENIED",
        "GUARDIAN_NOT_ACTING",
    )
    assert refused(lambda: grant(fed, child, "g-child-alone", "alipay"))[:2] == (
        "PERMISSION_DENIED",
        "GUARDIAN_NOT_ACTING",
    )
    history = fed.identity(ZJ).ListConsents(idpb.ListConsentsRequest(account_number=child), timeout=10).consents
    assert [c.guardian_account_number for c in history] == [guardian]


def test_a_guardian_under_18_or_unknown_in_the_other_region_is_refused_by_name(fed: Federation) -> None:
    teenager = open_in_beijing(fed, "20100101", "002")  # 16
    code, reason, meta, _ = refused(lambda: open_child(fed, teenager))
    assert (code, reason, meta["standing"], meta["region"]) == (
        "FAILED_PRECONDITION",
        "GUARDIAN_NOT_ELIGIBLE",
        "NOT_ADULT",
        BJ,
    )
    unknown = BJ + "000000000"
    unknown += luhn_check_digit(unknown)  # well formed, of Beijing, never issued
    code, reason, meta, _ = refused(lambda: open_child(fed, unknown, "open-child-2"))
    assert (code, reason, meta["region"]) == ("FAILED_PRECONDITION", "GUARDIAN_NOT_FOUND", BJ)


def test_an_unreachable_guardian_region_is_unavailable_and_records_nothing(fed: Federation) -> None:
    guardian = open_in_beijing(fed, "19800101", "004")
    child = open_child(fed, guardian)
    fed.stop_identity(BJ)
    code, reason, meta, retry = refused(lambda: grant(fed, child, "g-while-down", "alipay", guardian=guardian))
    assert (code, reason, meta["region"]) == ("UNAVAILABLE", "GUARDIAN_REGION_UNAVAILABLE", BJ)
    assert retry is not None and retry > 0
    assert not fed.identity(ZJ).ListConsents(idpb.ListConsentsRequest(account_number=child), timeout=10).consents
    code, reason, meta, retry = refused(lambda: open_child(fed, guardian, "open-sibling", "124"))
    assert (code, reason, meta["region"], meta["field"]) == (
        "UNAVAILABLE",
        "GUARDIAN_REGION_UNAVAILABLE",
        BJ,
        "guardian_account_number",
    )
    assert retry is not None and retry > 0
    sibling = common_pb2.ChannelBinding(platform="alipay", platform_user_id="child-124")
    lookup = idpb.ResolveAccountRequest(binding=sibling)
    assert refused(lambda: fed.identity(ZJ).ResolveAccount(lookup, timeout=10))[1] == "UNKNOWN_ACCOUNT"


def test_only_a_regions_identity_may_ask_the_gateway_about_a_guardian(fed: Federation) -> None:
    guardian = open_in_beijing(fed, "19800101", "005")
    question = gw.CheckGuardianRequest(guardian_account_number=guardian, platform="alipay")
    address = f"127.0.0.1:{fed.gateway_port}"
    zj_identity = TRUST.channel(address, identities.regional(ZJ, "identity"))
    as_identity = gateway_service_pb2_grpc.GatewayServiceStub(zj_identity)
    answer = as_identity.CheckGuardian(question, timeout=10)
    assert (answer.standing, answer.platform_bound, answer.region_code) == (idpb.GUARDIAN_STANDING_ELIGIBLE, True, BJ)
    as_ingest = gateway_service_pb2_grpc.GatewayServiceStub(TRUST.channel(address, identities.regional(ZJ, "ingest")))
    assert refused(lambda: as_ingest.CheckGuardian(question, timeout=10))[:2] == (
        "PERMISSION_DENIED",
        "CALLER_NOT_ALLOWED",
    )
    # Not served to external callers at all: the gateway forwards no GetGuardianStanding.
    stub = through_gateway(fed)
    ask = idpb.GetGuardianStandingRequest(account_number=guardian)
    assert refused(lambda: stub.GetGuardianStanding(ask, metadata=metadata("alipay"), timeout=10))[0] in (
        "UNIMPLEMENTED",
        "PERMISSION_DENIED",
    )
