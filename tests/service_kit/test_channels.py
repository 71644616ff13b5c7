"""Channels from service_kit.channels retry a call that failed UNAVAILABLE by gRPC's own retry policy (service
config), within the call's deadline; a caller that turns retries off sees the first failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import identities
from service_kit.channels import open_channel
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from tests.service_identities import TRUST

LEDGER = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
# A caller the access table lets read balances.
CALLER = TRUST.caller(identities.OPS_API)


class FlakyLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    """Answers UNAVAILABLE to the first `failures` calls, then answers."""

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0
        self._lock = threading.Lock()

    def GetBalance(
        self, request: ledger_service_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.GetBalanceResponse:
        with self._lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if failing:
            context.abort(self.code, "restarting")
        return ledger_service_pb2.GetBalanceResponse()


@pytest.fixture
def serve() -> Iterator[object]:
    running: list[RunningServer] = []

    def start(servicer: FlakyLedger) -> str:
        registration = Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, servicer, LEDGER)
        running.append(start_server(TRUST.server(Settings(service="ledger_svc")), [registration]))
        return running[-1].address

    yield start
    for server in running:
        server.stop()


def _balance(channel: grpc.Channel) -> None:
    request = ledger_service_pb2.GetBalanceRequest(account="x")
    ledger_service_pb2_grpc.LedgerServiceStub(channel).GetBalance(request, timeout=10)


def test_an_unavailable_answer_is_retried_by_the_channel(serve: object) -> None:
    ledger = FlakyLedger(failures=2)  # type: ignore[abstract]
    with open_channel(serve(ledger), CALLER) as channel:  # type: ignore[operator]
        _balance(channel)
    assert ledger.calls == 3


def test_retries_stop_at_the_policys_attempts_and_other_codes_are_not_retried(serve: object) -> None:
    down = FlakyLedger(failures=10)  # type: ignore[abstract]
    refused = FlakyLedger(failures=1, code=grpc.StatusCode.FAILED_PRECONDITION)  # type: ignore[abstract]
    for ledger, code, calls in (
        (down, grpc.StatusCode.UNAVAILABLE, 3),
        (refused, grpc.StatusCode.FAILED_PRECONDITION, 1),
    ):
        with open_channel(serve(ledger), CALLER) as channel, pytest.raises(grpc.RpcError) as raised:  # type: ignore[operator]
            _balance(channel)
        assert (raised.value.code(), ledger.calls) == (code, calls)  # type: ignore[attr-defined]


def test_a_caller_with_its_own_rules_turns_retries_off(serve: object) -> None:
    ledger = FlakyLedger(failures=1)  # type: ignore[abstract]
    with (
        open_channel(serve(ledger), CALLER, [("grpc.enable_retries", 0)]) as channel,  # type: ignore[operator]
        pytest.raises(grpc.RpcError),
    ):
        _balance(channel)
    assert ledger.calls == 1
