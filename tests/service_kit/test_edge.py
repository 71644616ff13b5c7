"""The kit's edge on a real server: bytes that do not decode and values no field may hold are INVALID_ARGUMENT with
a BadRequest listing every violation (before the servicer runs); infrastructure failures are UNAVAILABLE with
RetryInfo and a reason; an idempotent method is run again whole after a deadlock, another one is not."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import psycopg
import pytest
import redis
import sqlalchemy.exc
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from service_kit.errors import ResourceExhausted
from service_kit.failures import CACHE_UNAVAILABLE, DATABASE_CONFLICT, DATABASE_UNAVAILABLE, idempotent
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.service_identities import TRUST

LEDGER = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
GET_BALANCE = f"/{LEDGER}/GetBalance"


def _deadlock() -> Exception:
    return sqlalchemy.exc.OperationalError("UPDATE lots", {}, psycopg.errors.DeadlockDetected("deadlock detected"))


class FailingLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    """GetBalance (marked idempotent) and GetHold (not) fail as the account or hold id asks, counting calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seen: list[object] = []

    @idempotent
    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        self.seen.append(request)
        count = self.calls[request.account] = self.calls.get(request.account, 0) + 1
        if request.account == "deadlock-once" and count == 1:
            raise _deadlock()
        if request.account == "deadlock-always":
            raise _deadlock()
        if request.account == "database-down":
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
        if request.account == "redis-down":
            raise redis.ConnectionError("Connection refused")
        if request.account == "rate":
            raise ResourceExhausted("RATE_LIMITED", "slow down")
        return pb.GetBalanceResponse(balance=pb.Balance(account=request.account, available_points=count))

    def GetHold(self, request: pb.GetHoldRequest, context: grpc.ServicerContext) -> pb.GetHoldResponse:
        self.calls[request.hold_id] = self.calls.get(request.hold_id, 0) + 1
        raise _deadlock()

    def ListStatementEntries(
        self, request: pb.ListStatementEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListStatementEntriesResponse:
        self.seen.append(request)
        return pb.ListStatementEntriesResponse()


@pytest.fixture
def servicer() -> FailingLedger:
    return FailingLedger()  # type: ignore[abstract]


@pytest.fixture
def channel(servicer: FailingLedger) -> Iterator[grpc.Channel]:
    running: RunningServer = start_server(
        TRUST.server(Settings(service="ledger_svc", port=0)),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, servicer, LEDGER)],
    )
    # The channel's own retry policy is off: these tests count what the server itself runs again.
    with TRUST.allowed_channel(running.address, "330000", options=[("grpc.enable_retries", 0)]) as open_channel:
        yield open_channel
    running.stop()


def _failure(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_undecodable_bytes_are_invalid_argument_not_internal(channel: grpc.Channel, servicer: FailingLedger) -> None:
    raw = channel.unary_unary(GET_BALANCE, None, None)  # no serializer: the bytes go as they are
    for garbage in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xc3\x28"):  # bad tag, short field, bad UTF-8
        details = error_details(_failure(lambda: raw(garbage, timeout=5)))  # noqa: B023
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.reason == "MALFORMED_REQUEST"
    assert servicer.seen == []


def test_every_bad_value_is_listed_before_the_servicer_runs(channel: grpc.Channel, servicer: FailingLedger) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    request = pb.ListStatementEntriesRequest(
        account="a\x00b",
        page_token="x" * 10_000,
        start_time=Timestamp(seconds=-62_135_596_801),
        end_time=Timestamp(seconds=0, nanos=-1),
    )
    details = error_details(_failure(lambda: stub.ListStatementEntries(request, timeout=5)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {field for field, _ in details.violations} == {
        "account",
        "page_token",
        "start_time.seconds",
        "end_time.nanos",
    }
    assert details.metadata["field"] == "account"
    assert servicer.seen == []


def test_an_unknown_enum_value_is_named(channel: grpc.Channel) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    request = pb.ListStatementEntriesRequest(account="1", codes=[1, 12345])  # type: ignore[list-item]
    details = error_details(_failure(lambda: stub.ListStatementEntries(request, timeout=5)))
    assert details.violations[0][0] == "codes[1]"


def test_a_deadlock_in_an_idempotent_call_is_retried_whole(channel: grpc.Channel, servicer: FailingLedger) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    assert stub.GetBalance(pb.GetBalanceRequest(account="deadlock-once"), timeout=5).balance.available_points == 2


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        ("deadlock-always", DATABASE_CONFLICT),
        ("database-down", DATABASE_UNAVAILABLE),
        ("redis-down", CACHE_UNAVAILABLE),
    ],
)
def test_infrastructure_failures_are_unavailable_with_retry_advice(
    channel: grpc.Channel, account: str, reason: str
) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    details = error_details(_failure(lambda: stub.GetBalance(pb.GetBalanceRequest(account=account), timeout=5)))
    assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, reason)
    assert details.retry_delay is not None and details.retry_delay.total_seconds() > 0


def test_a_call_not_marked_idempotent_is_not_retried(channel: grpc.Channel, servicer: FailingLedger) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    details = error_details(_failure(lambda: stub.GetHold(pb.GetHoldRequest(hold_id="h"), timeout=5)))
    assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, DATABASE_CONFLICT)
    assert servicer.calls["h"] == 1


def test_resource_exhausted_carries_retry_info(channel: grpc.Channel) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    details = error_details(_failure(lambda: stub.GetBalance(pb.GetBalanceRequest(account="rate"), timeout=5)))
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.retry_delay is not None and details.retry_delay.total_seconds() > 0


def test_a_value_the_database_refuses_is_invalid_argument() -> None:
    from service_kit.failures import classify

    refused = sqlalchemy.exc.DataError("INSERT", {}, psycopg.errors.StringDataRightTruncation("value too long"))
    failure = classify(refused)
    assert failure is not None and failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert classify(RuntimeError("a bug")) is None
