"""Binding a channel, reading an account and looking one up by ID number, by callers in and out of scope: refusals
carry their reason, and nothing is opened or bound."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as pb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc.server import SERVICE_NAME, IdentityServices, IdentityServiceServicer
from service_kit import identities
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.identity.identity_helpers import SAMPLE_ID
from tests.service_identities import TRUST

REGION = "330000"
OUTSIDERS = [
    "",
    identities.regional(REGION, "ingest"),
    identities.regional(REGION, "rewards"),
    identities.regional("110000", "identity"),
    identities.regional("110000", "ingest"),
]


@pytest.fixture
def server(services: IdentityServices) -> Iterator[RunningServer]:
    registration = Registration(
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServiceServicer(services), SERVICE_NAME
    )
    running = start_server(TRUST.server(Settings(service="identity_svc", region_code=REGION)), [registration])
    yield running
    running.stop()


def _stub(server: RunningServer, spiffe_id: str) -> tuple[grpc.Channel, identity_service_pb2_grpc.IdentityServiceStub]:
    channel = TRUST.channel(server.address, spiffe_id) if spiffe_id else grpc.insecure_channel(server.address)
    return channel, identity_service_pb2_grpc.IdentityServiceStub(channel)


def _opening(request_id: str, user: str) -> pb.OpenAccountRequest:
    return pb.OpenAccountRequest(
        request_id=request_id,
        channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
        name="张三",
        id_number=SAMPLE_ID,
        phone_number="13812345678",
        binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=user),
    )


def _expected(caller: str) -> tuple[str, str]:
    return ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED") if caller else ("UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING")


def _refused(call: object, request: object) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call(request, timeout=10)  # type: ignore[operator]
    details = error_details(refused.value)
    return details.code.name, details.reason


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_callers_out_of_scope_cannot_bind_a_channel_or_read_an_account(server: RunningServer, caller: str) -> None:
    ops_channel, ops = _stub(server, identities.OPS_API)
    account = ops.OpenAccount(_opening("by-the-counter", "2088-owner"), timeout=10).account.account_number
    channel, stub = _stub(server, caller)
    with channel:
        assert _refused(stub.OpenAccount, _opening("hijack", "2088-intruder")) == _expected(caller)
        assert _refused(stub.GetAccount, pb.GetAccountRequest(account_number=account)) == _expected(caller)
        assert _refused(stub.ResolveAccount, pb.ResolveAccountRequest(id_number=SAMPLE_ID)) == _expected(caller)
    with ops_channel:
        unbound = pb.ResolveAccountRequest(
            binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088-intruder")
        )
        assert _refused(ops.ResolveAccount, unbound) == ("NOT_FOUND", "UNKNOWN_ACCOUNT")
        bindings = ops.ListBindings(pb.ListBindingsRequest(account_number=account), timeout=10).bindings
    assert [binding.masked_platform_user_id for binding in bindings] == ["20****er"]  # the owner's binding alone


def test_only_the_ops_api_looks_an_account_up_by_id_number(server: RunningServer) -> None:
    ops_channel, ops = _stub(server, identities.OPS_API)
    gateway_channel, gateway = _stub(server, identities.GATEWAY)
    with ops_channel, gateway_channel:
        account = gateway.OpenAccount(_opening("via-alipay", "2088-owner"), timeout=10).account.account_number
        by_id = pb.ResolveAccountRequest(id_number=SAMPLE_ID)
        assert ops.ResolveAccount(by_id, timeout=10).account_number == account
        assert _refused(gateway.ResolveAccount, by_id) == ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED")
        by_binding = pb.ResolveAccountRequest(
            binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088-owner")
        )
        assert gateway.ResolveAccount(by_binding, timeout=10).account_number == account
