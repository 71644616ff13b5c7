"""Regional methods served on the gateway: forwarded to the account's home region, for the caller's region only, and a
region that is down is unavailable for its own accounts only."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf import descriptor_pool

from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from gateway.service.forwarding import NOT_SERVED, ROUTES, SERVICE_NAMES
from service_kit.clock import china_day
from service_kit.server import RunningServer
from tests.gateway.federation import Federation, metadata, refusal


def via_gateway(fed: Federation) -> ledger_service_pb2_grpc.LedgerServiceStub:
    return ledger_service_pb2_grpc.LedgerServiceStub(fed.gateway_channel())


def test_ledger_and_identity_reads_are_forwarded_to_the_home_region(
    federation: Federation, gateway: RunningServer
) -> None:
    zj, bj = federation.open_person(["330000", "110000"])
    federation.earn("330000", zj, 250)
    balance = via_gateway(federation).GetBalance(lpb.GetBalanceRequest(account=zj), metadata=metadata("zj"), timeout=5)
    assert balance.balance.available_points == 250
    lots = via_gateway(federation).ListLots(lpb.ListLotsRequest(account=zj), metadata=metadata("zj"), timeout=5)
    assert sum(lot.remaining_points for lot in lots.lots) == 250
    month = china_day(datetime.now(UTC))
    request = lpb.GetMonthlySummaryRequest(account=zj, year=month.year, month=month.month)
    summary = via_gateway(federation).GetMonthlySummary(request, metadata=metadata("zj"), timeout=5)
    assert (summary.earned_points, summary.net_change_points) == (250, 250)
    identity = identity_service_pb2_grpc.IdentityServiceStub(
        federation._channel(f"127.0.0.1:{federation.gateway_port}")
    )
    found = identity.GetAccount(idpb.GetAccountRequest(account_number=bj), metadata=metadata("bj"), timeout=5)
    assert found.account.account_number == bj


def test_a_platform_reads_only_its_own_regions_accounts(federation: Federation, gateway: RunningServer) -> None:
    bj = federation.open_account("110000")
    stub = via_gateway(federation)
    code, reason, _ = refusal(lambda: stub.GetBalance(lpb.GetBalanceRequest(account=bj), metadata=metadata("zj")))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH")
    code, _, meta = refusal(lambda: stub.GetBalance(lpb.GetBalanceRequest(account="123"), metadata=metadata("zj")))
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "account")


def test_a_region_down_is_unavailable_for_its_accounts_only(federation: Federation, gateway: RunningServer) -> None:
    zj, bj = federation.open_person(["330000", "110000"])
    federation.kill_ledger("110000")
    stub = via_gateway(federation)
    request = lpb.GetBalanceRequest(account=bj)
    code, reason, meta = refusal(lambda: stub.GetBalance(request, metadata=metadata("ops"), timeout=5))
    assert (code, reason, meta["region"]) == (grpc.StatusCode.UNAVAILABLE, "REGION_UNAVAILABLE", "110000")
    assert stub.GetBalance(lpb.GetBalanceRequest(account=zj), metadata=metadata("ops"), timeout=5).balance.account == zj


def test_every_route_names_the_regional_methods_messages_and_an_account_field_of_its_request() -> None:
    pool = descriptor_pool.Default()
    for route in ROUTES:
        method = pool.FindServiceByName(SERVICE_NAMES[route.service]).FindMethodByName(route.method)
        assert method.input_type.full_name == route.request.DESCRIPTOR.full_name, route.path
        assert method.output_type.full_name == route.response.DESCRIPTOR.full_name, route.path
        assert method.client_streaming == route.client_streaming, route.path
        assert not method.server_streaming, route.path
        fields = route.request.DESCRIPTOR.fields_by_name
        assert route.account_field == "" or route.account_field in fields, route.path
        assert all(name in fields for name in route.operator_only_fields), route.path
    assert len({route.path for route in ROUTES}) == len(ROUTES)


def test_every_regional_method_is_either_forwarded_or_deliberately_not_served() -> None:
    pool = descriptor_pool.Default()
    every = {
        f"{name}/{method.name}" for name in SERVICE_NAMES.values() for method in pool.FindServiceByName(name).methods
    }
    forwarded = {route.path.lstrip("/") for route in ROUTES}
    assert forwarded.isdisjoint(NOT_SERVED)
    assert forwarded | set(NOT_SERVED) == every


def test_a_platform_switches_a_residents_reminders_off_through_the_gateway(
    federation: Federation, gateway: RunningServer
) -> None:
    zj = federation.open_account("330000")
    identity = identity_service_pb2_grpc.IdentityServiceStub(
        federation._channel(f"127.0.0.1:{federation.gateway_port}")
    )
    request = idpb.SetReminderPreferenceRequest(account_number=zj, reminders_off=True)
    switched = identity.SetReminderPreference(request, metadata=metadata("zj"), timeout=5)
    assert (switched.account_number, switched.reminders_off) == (zj, True)
    code, reason, _ = refusal(lambda: identity.SetReminderPreference(request, metadata=metadata("bj"), timeout=5))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH")
