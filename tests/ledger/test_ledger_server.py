"""The real gRPC server on a real port: messages in and out, errors as statuses with a reason and field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import grpc
import pytest
from google.protobuf import duration_pb2
from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ledger_svc import server
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.posting import ItemResult, Posting, Status, TransferRequest
from ledger_svc.server import registrations
from service_kit.server import start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.ledger.ledger_support import ISSUANCE, REDEMPTION, REGION, MovableClock, account_number

A = account_number(1)
B = account_number(2)


@pytest.fixture
def stub(sqlite_engine: Engine, clock: MovableClock) -> Iterator[ledger_service_pb2_grpc.LedgerServiceStub]:
    settings = Settings(service="ledger_svc", region_code=REGION, port=0)
    running = start_server(settings, registrations(settings, sqlite_engine, clock))
    with grpc.insecure_channel(running.address) as channel:
        yield ledger_service_pb2_grpc.LedgerServiceStub(channel)
    running.stop()


def _earn(transfer_id: str, amount: int) -> pb.Transfer:
    return pb.Transfer(
        transfer_id=transfer_id,
        debit_account=ISSUANCE,
        credit_account=A,
        amount_points=amount,
        code=pb.TRANSFER_CODE_EARN,
        co2e_grams=120,
    )


def test_post_transfers_and_get_balance(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    response = stub.PostTransfers(pb.PostTransfersRequest(transfers=[_earn("e1", 100), _earn("e2", 0)]), timeout=10)
    assert [r.status for r in response.results] == [pb.TRANSFER_STATUS_POSTED, pb.TRANSFER_STATUS_FAILED]
    assert response.results[1].failure_reason == "INVALID_AMOUNT"
    assert response.results[0].lots[0].amount_points == 100
    replay = stub.PostTransfers(pb.PostTransfersRequest(transfers=[_earn("e1", 100)]), timeout=10)
    assert replay.results[0].status == pb.TRANSFER_STATUS_ALREADY_POSTED
    balance = stub.GetBalance(pb.GetBalanceRequest(account=A), timeout=10).balance
    assert (balance.available_points, balance.total_points) == (100, 100)
    statement = stub.ListStatementEntries(pb.ListStatementEntriesRequest(account=A), timeout=10)
    assert [(e.transfer_id, e.amount_points, e.co2e_grams) for e in statement.entries] == [("e1", 100, 120)]


def test_hold_commit_refund_round_trip(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    stub.PostTransfers(pb.PostTransfersRequest(transfers=[_earn("e1", 100)]), timeout=10)
    hold = stub.Hold(
        pb.HoldRequest(hold_id="h1", account=A, amount_points=60, timeout=duration_pb2.Duration(seconds=60)), timeout=10
    ).hold
    assert (hold.state, hold.lots[0].amount_points) == (pb.HOLD_STATE_PENDING, 60)
    committed = stub.CommitHold(pb.CommitHoldRequest(hold_id="h1", credit_account=REDEMPTION), timeout=10)
    assert committed.hold.state == pb.HOLD_STATE_COMMITTED
    assert committed.result.lots[0].expires_at.seconds > 0
    assert stub.GetTransfer(pb.GetTransferRequest(transfer_id="h1"), timeout=10).transfer.amount_points == 60
    refund = stub.RefundTransfer(pb.RefundTransferRequest(refund_id="r1", original_transfer_id="h1"), timeout=10)
    assert refund.result.status == pb.TRANSFER_STATUS_POSTED
    assert stub.GetBalance(pb.GetBalanceRequest(account=A), timeout=10).balance.available_points == 100
    assert stub.VerifyJournal(pb.VerifyJournalRequest(), timeout=10).ok
    conservation = stub.CheckConservation(pb.CheckConservationRequest(), timeout=10)
    assert conservation.balanced and conservation.issued_points == 100


def test_hold_id_reused_with_another_body_is_already_exists(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    stub.PostTransfers(pb.PostTransfersRequest(transfers=[_earn("e1", 100)]), timeout=10)
    stub.Hold(pb.HoldRequest(hold_id="h1", account=A, amount_points=10), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Hold(pb.HoldRequest(hold_id="h1", account=A, amount_points=11), timeout=10)
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


def test_insufficient_points_is_failed_precondition(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Hold(pb.HoldRequest(hold_id="h1", account=A, amount_points=1), timeout=10)
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ("GetBalance", "account"),
        ("Hold", "account"),
        ("PostTransfers", "transfers"),
        ("ListStatementEntries", "account"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(
    stub: ledger_service_pb2_grpc.LedgerServiceStub, call: str, field: str
) -> None:
    requests = {
        "GetBalance": pb.GetBalanceRequest(account="110000123"),
        "Hold": pb.HoldRequest(hold_id="h1", account=account_number(1, "110000"), amount_points=1),
        "PostTransfers": pb.PostTransfersRequest(),
        "ListStatementEntries": pb.ListStatementEntriesRequest(account="system:nope"),
    }
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, call)(requests[call], timeout=10)
    details = error_details(caught.value)
    assert (details.code, details.metadata.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, field)


def test_unknown_hold_is_not_found(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetHold(pb.GetHoldRequest(hold_id="nope"), timeout=10)
    assert error_details(caught.value).reason == "HOLD_NOT_FOUND"


def test_results_filled_from_a_shared_template_are_the_results_built_field_by_field() -> None:
    day, at_us, until_us = date(2026, 3, 15), 1_773_000_000_123_456, 1_836_000_000_000_000
    results = [
        ItemResult("t1", Status.POSTED, posting=_posting("t1", at_us, Portion(LotKey(A, until_us, day), 10, 7))),
        ItemResult("t2", Status.ALREADY_POSTED, posting=_posting("t2", at_us, Portion(LotKey(B, until_us, day), 3, 8))),
        ItemResult("t3", Status.POSTED, posting=_posting("t3", 0, Portion(LotKey(A, 0, date(1970, 1, 1)), 0))),
        ItemResult("t4", Status.FAILED, "INVALID_AMOUNT", "amount_points must be positive"),
    ]
    response = pb.PostTransfersResponse()
    cache = server._SubMessages()
    for result in results:
        server._fill_result(response.results.add(), result, cache)
    expected = pb.PostTransfersResponse(results=[_result_field_by_field(result) for result in results])
    assert response.SerializeToString() == expected.SerializeToString()


def test_a_transfer_message_becomes_the_request_with_sorted_metadata() -> None:
    message = _earn("t1", 5)
    message.metadata.update({"rule": "r2", "behaviour": "metro", "引用": "x"})
    message.earned_at.FromMicroseconds(1_773_000_000_123_456)
    request = server._transfer_request(0, message)
    assert request == TransferRequest(
        transfer_id="t1",
        debit_account=ISSUANCE,
        credit_account=A,
        amount_points=5,
        code=1,
        earned_at_us=1_773_000_000_123_456,
        co2e_grams=120,
        metadata=tuple(sorted(message.metadata.items())),
    )


def _posting(transfer_id: str, posted_at_us: int, lot: Portion) -> Posting:
    return Posting(transfer_id, ISSUANCE, lot.key.account, 10, 1, posted_at_us, "f", credit_lots=[lot])


def _result_field_by_field(result: ItemResult) -> pb.TransferResult:
    message = pb.TransferResult(
        transfer_id=result.transfer_id,
        status=server._STATUS[result.status],
        failure_reason=result.failure_reason,
        failure_message=result.failure_message,
    )
    if result.posting is not None:
        message.posted_at.CopyFrom(server._timestamp(result.posting.posted_at_us))
        message.lots.extend(server._portion(portion) for portion in result.lots)
    return message
