"""The real gRPC server on a real port: messages in and out, errors as statuses with a reason and field; PostCredits
answers exactly as PostTransfers does for the same transfers, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ledger_svc.server import registrations
from service_kit.server import start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.ledger.ledger_support import ISSUANCE, REDEMPTION, REGION, MovableClock, account_number, migrated_engine
from tests.service_identities import TRUST

A = account_number(1)
B = account_number(2)


@pytest.fixture
def stub(sqlite_engine: Engine, clock: MovableClock) -> Iterator[ledger_service_pb2_grpc.LedgerServiceStub]:
    settings = TRUST.server(Settings(service="ledger_svc", region_code=REGION, port=0))
    running = start_server(settings, registrations(settings, sqlite_engine, clock))
    with TRUST.allowed_channel(running.address, REGION) as channel:
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


Stub = ledger_service_pb2_grpc.LedgerServiceStub
METADATA = {"partner_id": "metro", "behaviour": "transit_trip"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def twin_stubs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Stub, Stub]]:
    """Two ledgers on two empty databases of one kind, sharing one clock."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"]
    else:
        fresh: Callable[[], str] = request.getfixturevalue("fresh_postgres_url")
        urls = [fresh(), fresh()]
    clock = MovableClock()
    settings = TRUST.server(Settings(service="ledger_svc", region_code=REGION, port=0))
    engines = [migrated_engine(url) for url in urls]
    servers = [start_server(settings, registrations(settings, engine, clock)) for engine in engines]
    channels = [TRUST.allowed_channel(running.address, REGION) for running in servers]
    yield Stub(channels[0]), Stub(channels[1])
    for channel, running, engine in zip(channels, servers, engines, strict=True):
        channel.close()
        running.stop()
        engine.dispose()


def _columns(transfers: list[pb.Transfer]) -> pb.PostCreditsRequest:
    """The transfers (one debit account, code and metadata) as one group of columns."""
    first = transfers[0]
    return pb.PostCreditsRequest(
        groups=[
            pb.CreditGroup(
                debit_account=first.debit_account,
                code=first.code,
                metadata=first.metadata,
                transfer_ids=[t.transfer_id for t in transfers],
                credit_accounts=[t.credit_account for t in transfers],
                amount_points=[t.amount_points for t in transfers],
                earned_at_us=[t.earned_at.seconds * 1_000_000 + t.earned_at.nanos // 1000 for t in transfers],
                references=[t.reference for t in transfers],
                co2e_grams=[t.co2e_grams for t in transfers],
            )
        ]
    )


def _earn_to(transfer_id: str, account: str, points: int, reference: str = "") -> pb.Transfer:
    return pb.Transfer(
        transfer_id=transfer_id,
        debit_account=ISSUANCE,
        credit_account=account,
        amount_points=points,
        code=pb.TRANSFER_CODE_EARN,
        earned_at=Timestamp(seconds=1_772_337_600, nanos=123_456_000),  # 2026-03-01 04:00:00.123456 UTC
        reference=reference,
        co2e_grams=points * 12,
        metadata=METADATA,
    )


def _as_columns(response: pb.PostTransfersResponse) -> pb.PostCreditsResponse:
    return pb.PostCreditsResponse(
        statuses=[r.status for r in response.results],
        lot_ids=[r.lots[0].lot_id if r.status != pb.TRANSFER_STATUS_FAILED else "" for r in response.results],
        posted_at_us=[r.posted_at.seconds * 1_000_000 + r.posted_at.nanos // 1000 for r in response.results],
        failures=[
            pb.CreditFailure(index=n, reason=r.failure_reason, message=r.failure_message)
            for n, r in enumerate(response.results)
            if r.status == pb.TRANSFER_STATUS_FAILED
        ],
    )


def _balances(stub: Stub, accounts: list[str]) -> list[int]:
    return [stub.GetBalance(pb.GetBalanceRequest(account=a), timeout=10).balance.total_points for a in accounts]


@pytest.mark.parametrize(
    "odd_one",
    [
        None,  # every item a fresh credit: PostgreSQL's set-based path
        _earn_to("bad-account", "110000000000000", 5),  # not an account number: the general path names it
        _earn_to("zero", account_number(3), 0),
    ],
)
def test_post_credits_answers_as_post_transfers(twin_stubs: tuple[Stub, Stub], odd_one: pb.Transfer | None) -> None:
    by_rows, by_columns = twin_stubs
    first = [_earn_to("e1", account_number(1), 10), _earn_to("e2", account_number(2), 20)]
    for stub in twin_stubs:
        stub.PostTransfers(pb.PostTransfersRequest(transfers=first), timeout=10)
    batch = [_earn_to(f"n{n}", account_number(1 + n % 3), 1 + n, reference=f"event-{n}") for n in range(6)] + [
        _earn_to("e1", account_number(1), 10),  # replay, same body
        _earn_to("e2", account_number(2), 21),  # replay, another body
    ]
    if odd_one is not None:
        batch.insert(3, odd_one)

    expected = _as_columns(by_rows.PostTransfers(pb.PostTransfersRequest(transfers=batch), timeout=10))
    answered = by_columns.PostCredits(_columns(batch), timeout=10)

    assert answered == expected
    assert [s for s in answered.statuses][-2:] == [pb.TRANSFER_STATUS_ALREADY_POSTED, pb.TRANSFER_STATUS_FAILED]
    assert answered.failures[-1].reason == "IDEMPOTENCY_KEY_REUSED"
    accounts = [account_number(n) for n in (1, 2, 3)]
    assert _balances(by_columns, accounts) == _balances(by_rows, accounts)
    statements = [
        [
            (e.transfer_id, e.amount_points, e.co2e_grams)
            for e in stub.ListStatementEntries(pb.ListStatementEntriesRequest(account=accounts[0]), timeout=10).entries
        ]
        for stub in twin_stubs
    ]
    assert statements[0] == statements[1]


def test_columns_of_different_lengths_are_refused_and_nothing_is_posted(twin_stubs: tuple[Stub, Stub]) -> None:
    stub = twin_stubs[0]
    request = _columns([_earn_to("e1", account_number(1), 10), _earn_to("e2", account_number(2), 20)])
    del request.groups[0].co2e_grams[1]

    with pytest.raises(grpc.RpcError) as raised:
        stub.PostCredits(request, timeout=10)

    details = error_details(raised.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.metadata.get("field") == "groups[0].co2e_grams", details
    assert _balances(stub, [account_number(1), account_number(2)]) == [0, 0]


def test_hold_batch_commit_holds_and_release_holds_answer_per_item(
    stub: ledger_service_pb2_grpc.LedgerServiceStub,
) -> None:
    stub.PostTransfers(pb.PostTransfersRequest(transfers=[_earn("e1", 100)]), timeout=10)
    placed = stub.HoldBatch(
        pb.HoldBatchRequest(
            holds=[
                pb.HoldRequest(hold_id="h1", account=A, amount_points=30),
                pb.HoldRequest(hold_id="h2", account=A, amount_points=30, timeout=duration_pb2.Duration(seconds=-1)),
                pb.HoldRequest(hold_id="h3", account=A, amount_points=500),
                pb.HoldRequest(hold_id="h4", account=A, amount_points=20, commit_to_account=REDEMPTION),
                pb.HoldRequest(hold_id="h5", account=A, amount_points=10),
            ]
        ),
        timeout=10,
    )
    assert [(r.hold_id, r.status, r.failure_code, r.failure_reason, r.failure_field) for r in placed.results] == [
        ("h1", pb.HOLD_ITEM_STATUS_DONE, 0, "", ""),
        ("h2", pb.HOLD_ITEM_STATUS_FAILED, grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT", "timeout"),
        ("h3", pb.HOLD_ITEM_STATUS_FAILED, grpc.StatusCode.FAILED_PRECONDITION.value[0], "INSUFFICIENT_POINTS", ""),
        ("h4", pb.HOLD_ITEM_STATUS_DONE, 0, "", ""),
        ("h5", pb.HOLD_ITEM_STATUS_DONE, 0, "", ""),
    ]
    assert placed.results[0].hold.state == pb.HOLD_STATE_PENDING and not placed.results[0].HasField("result")
    assert placed.results[3].hold.state == pb.HOLD_STATE_COMMITTED
    assert placed.results[3].result.status == pb.TRANSFER_STATUS_POSTED and not placed.results[2].HasField("hold")
    committed = stub.CommitHolds(
        pb.CommitHoldsRequest(
            commits=[
                pb.CommitHoldRequest(hold_id="h1", credit_account=REDEMPTION),
                pb.CommitHoldRequest(hold_id="h1", credit_account=REDEMPTION),
                pb.CommitHoldRequest(hold_id="zz", credit_account=REDEMPTION),
            ]
        ),
        timeout=10,
    )
    assert [(r.status, r.failure_reason, r.result.status) for r in committed.results] == [
        (pb.HOLD_ITEM_STATUS_DONE, "", pb.TRANSFER_STATUS_POSTED),
        (pb.HOLD_ITEM_STATUS_REPEATED, "", pb.TRANSFER_STATUS_ALREADY_POSTED),
        (pb.HOLD_ITEM_STATUS_FAILED, "HOLD_NOT_FOUND", pb.TRANSFER_STATUS_UNSPECIFIED),
    ]
    released = stub.ReleaseHolds(
        pb.ReleaseHoldsRequest(releases=[pb.ReleaseHoldRequest(hold_id="h5"), pb.ReleaseHoldRequest(hold_id="h1")]),
        timeout=10,
    )
    assert [(r.status, r.failure_reason, r.hold.state) for r in released.results] == [
        (pb.HOLD_ITEM_STATUS_DONE, "", pb.HOLD_STATE_RELEASED),
        (pb.HOLD_ITEM_STATUS_FAILED, "HOLD_COMMITTED", pb.HOLD_STATE_UNSPECIFIED),
    ]
    balance = stub.GetBalance(pb.GetBalanceRequest(account=A), timeout=10).balance
    assert (balance.available_points, balance.held_points, balance.total_points) == (50, 0, 50)
    with pytest.raises(grpc.RpcError) as empty:
        stub.HoldBatch(pb.HoldBatchRequest(), timeout=10)
    assert empty.value.code() is grpc.StatusCode.INVALID_ARGUMENT
