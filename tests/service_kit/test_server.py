"""A real gRPC server started by the kit: health, reflection, and the one error-to-status mapping."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import identities
from service_kit.errors import FailedPrecondition, InvalidArgument
from service_kit.server import (
    YOUNG_GENERATION_THRESHOLD,
    Registration,
    RunningServer,
    start_server,
    tune_garbage_collector,
)
from service_kit.settings import Settings
from service_kit.status import INTERNAL_MESSAGE, error_details
from tests.service_identities import TRUST

LEDGER = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


class ProbeLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    """Answers GetBalance by what the account name asks for, to exercise every error path."""

    def GetBalance(
        self, request: ledger_service_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.GetBalanceResponse:
        if request.account == "bad":
            raise InvalidArgument("account", "must be a 16-digit account number")
        if request.account == "poor":
            raise FailedPrecondition("INSUFFICIENT_POINTS", "not enough points", {"missing_points": 40})
        if request.account == "crash":
            raise RuntimeError("secret internal detail 3301051949")
        if request.account == "abort":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
        return ledger_service_pb2.GetBalanceResponse(
            balance=ledger_service_pb2.Balance(account=request.account, available_points=7)
        )


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = start_server(
        TRUST.server(Settings(service="ledger_svc", port=0)),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, ProbeLedger(), LEDGER)],  # type: ignore[abstract]
    )
    yield running
    running.stop()


@pytest.fixture
def ledger(server: RunningServer) -> Iterator[ledger_service_pb2_grpc.LedgerServiceStub]:
    # The ops API may call both methods used here (GetBalance, VerifyJournal).
    with TRUST.channel(server.address, identities.OPS_API) as channel:
        yield ledger_service_pb2_grpc.LedgerServiceStub(channel)


def _call_failing(ledger: ledger_service_pb2_grpc.LedgerServiceStub, account: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        ledger.GetBalance(ledger_service_pb2.GetBalanceRequest(account=account), timeout=5)
    return caught.value


def test_a_healthy_call_returns_its_response(ledger: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    response = ledger.GetBalance(ledger_service_pb2.GetBalanceRequest(account="ok"), timeout=5)
    assert response.balance.available_points == 7


def test_bad_input_becomes_invalid_argument_naming_the_field(ledger: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    details = error_details(_call_failing(ledger, "bad"))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert details.metadata["field"] == "account"
    assert details.domain == "ledger.carbon-account"
    assert "account" in details.message


def test_domain_error_carries_its_reason_and_metadata(ledger: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    details = error_details(_call_failing(ledger, "poor"))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "INSUFFICIENT_POINTS"
    assert details.metadata == {"missing_points": "40"}


def test_unexpected_exception_is_internal_without_leaking_its_text(
    ledger: ledger_service_pb2_grpc.LedgerServiceStub,
) -> None:
    error = _call_failing(ledger, "crash")
    details = error_details(error)
    assert details.code == grpc.StatusCode.INTERNAL
    assert details.reason == "INTERNAL"
    assert details.message == INTERNAL_MESSAGE
    assert "secret" not in str(error) and "Traceback" not in str(error) and "3301051949" not in str(error)


def test_an_explicit_abort_passes_through_untouched(ledger: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    error = _call_failing(ledger, "abort")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert error.details() == "not yours"  # type: ignore[attr-defined]


def test_an_unbuilt_method_answers_unimplemented(ledger: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        ledger.VerifyJournal(ledger_service_pb2.VerifyJournalRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_health_reports_serving_for_the_server_and_each_service(server: RunningServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ["", LEDGER]:
            response = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service_health_and_reflection(server: RunningServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {LEDGER, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services


def test_a_stopped_server_reports_not_serving_then_goes_away() -> None:
    running = start_server(
        Settings(service="ledger_svc", port=0),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, ProbeLedger(), LEDGER)],  # type: ignore[abstract]
    )
    running.health.enter_graceful_shutdown()
    with grpc.insecure_channel(running.address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=LEDGER), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
    running.stop()


def test_a_ready_service_freezes_what_it_built_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0, "startup objects are out of later collections"
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_reflection_v1_answers_as_v1alpha_does(server: RunningServer) -> None:
    """grpcurl and current tools ask grpc.reflection.v1 first; the kit serves it beside v1alpha."""
    from grpc_reflection.v1alpha import reflection_pb2

    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=LEDGER),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    ]
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            reflection_pb2.ServerReflectionRequest.SerializeToString,
            reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, ledger_file, v1_file = list(call(iter(requests), timeout=5))
    names = {service.name for service in listed.list_services_response.service}
    assert {LEDGER, "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert ledger_file.file_descriptor_response.file_descriptor_proto
    assert v1_file.file_descriptor_response.file_descriptor_proto
