"""Who may mint, carry lots in and read, on a real ledger: every refusal names its reason and leaves the books as
they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import Engine

from carbon.common.v1 import common_pb2
from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ledger_svc.server import registrations
from service_kit import identities
from service_kit.server import RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from service_kit.wire import to_timestamp
from tests.ledger.ledger_support import ISSUANCE, REGION, MovableClock, account_number
from tests.service_identities import TRUST

A = account_number(1)
OTHER = "110000"
INGEST = identities.regional(REGION, "ingest")
REWARDS = identities.regional(REGION, "rewards")


@pytest.fixture
def ledger(sqlite_engine: Engine, clock: MovableClock) -> Iterator[RunningServer]:
    settings = TRUST.server(Settings(service="ledger_svc", region_code=REGION, port=0))
    running = start_server(settings, registrations(settings, sqlite_engine, clock))
    yield running
    running.stop()


def _mint(transfer_id: str, amount: int = 1_000) -> pb.PostTransfersRequest:
    transfer = pb.Transfer(
        transfer_id=transfer_id,
        debit_account=ISSUANCE,
        credit_account=A,
        amount_points=amount,
        code=pb.TRANSFER_CODE_EARN,
    )
    return pb.PostTransfersRequest(transfers=[transfer])


def _carry_in(transfer_id: str, amount: int = 1_000) -> pb.PostTransfersRequest:
    now = datetime.now(UTC)
    lot = pb.LotPortion(
        earned_on=common_pb2.Date(year=now.year, month=now.month, day=now.day),
        expires_at=to_timestamp(now + timedelta(days=300)),
        amount_points=amount,
    )
    transfer = pb.Transfer(
        transfer_id=transfer_id,
        debit_account="system:clearing",
        credit_account=A,
        amount_points=amount,
        code=pb.TRANSFER_CODE_TRANSFER_IN,
        carried_lots=[lot],
    )
    return pb.PostTransfersRequest(transfers=[transfer])


def _as(ledger: RunningServer, spiffe_id: str) -> grpc.Channel:
    return TRUST.channel(ledger.address, spiffe_id) if spiffe_id else grpc.insecure_channel(ledger.address)


def _books(ledger: RunningServer) -> tuple[int, bool]:
    with TRUST.channel(ledger.address, identities.OPS_API) as channel:
        stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        balance = stub.GetBalance(pb.GetBalanceRequest(account=A), timeout=10).balance.total_points
        balanced = stub.CheckConservation(pb.CheckConservationRequest(), timeout=10).balanced
    return balance, balanced


def _refusal(ledger: RunningServer, spiffe_id: str, method: str, request: object) -> tuple[str, str, dict[str, str]]:
    with _as(ledger, spiffe_id) as channel, pytest.raises(grpc.RpcError) as refused:
        getattr(ledger_service_pb2_grpc.LedgerServiceStub(channel), method)(request, timeout=10)
    details = error_details(refused.value)
    return details.code.name, details.reason, details.metadata


def _expected(caller: str) -> tuple[str, str]:
    """No identity at all is unauthenticated; a proved identity the rules do not admit is denied."""
    return (
        ("UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING") if not caller else ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED")
    )


@pytest.mark.parametrize(
    ("caller", "code", "reason"),
    [
        ("", "UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING"),
        (REWARDS, "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),  # may post, but not fresh points
        (identities.GATEWAY, "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
        (identities.regional(REGION, "identity"), "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
        (identities.regional(OTHER, "ingest"), "PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),  # another region's
    ],
)
def test_nobody_but_the_regions_ingest_and_the_ops_api_mints(
    ledger: RunningServer, caller: str, code: str, reason: str
) -> None:
    before = _books(ledger)
    assert _refusal(ledger, caller, "PostTransfers", _mint("earn-forged"))[:2] == (code, reason)
    credits = pb.PostCreditsRequest(
        groups=[
            pb.CreditGroup(
                debit_account=ISSUANCE,
                code=pb.TRANSFER_CODE_EARN,
                transfer_ids=["earn-forged-2"],
                credit_accounts=[A],
                amount_points=[1_000],
                earned_at_us=[0],
                references=[""],
                co2e_grams=[0],
            )
        ]
    )
    assert _refusal(ledger, caller, "PostCredits", credits)[:2] == (code, reason)
    assert _books(ledger) == before


def test_the_refusal_of_a_forged_mint_names_the_item(ledger: RunningServer) -> None:
    _code, _reason, metadata = _refusal(ledger, REWARDS, "PostTransfers", _mint("earn-forged"))
    assert metadata == {
        "caller": REWARDS,
        "field": "transfers[0].debit_account",
        "method": "/carbon.ledger.v1.LedgerService/PostTransfers",
    }


@pytest.mark.parametrize("caller", [INGEST, identities.OPS_API])
def test_the_regions_ingest_and_the_ops_api_mint(ledger: RunningServer, caller: str) -> None:
    with _as(ledger, caller) as channel:
        posted = ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(_mint("earn-1", 250), timeout=10)
    assert posted.results[0].status == pb.TRANSFER_STATUS_POSTED
    assert _books(ledger) == (250, True)


@pytest.mark.parametrize("caller", ["", REWARDS, INGEST, identities.OPS_API, identities.regional(OTHER, "ledger")])
def test_only_the_gateway_carries_lots_in(ledger: RunningServer, caller: str) -> None:
    before = _books(ledger)
    code, reason, _metadata = _refusal(ledger, caller, "PostTransfers", _carry_in("xrt:forged"))
    assert (code, reason) in {
        ("UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING"),
        ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
    }
    assert _books(ledger) == before
    with _as(ledger, identities.GATEWAY) as channel:
        posted = ledger_service_pb2_grpc.LedgerServiceStub(channel).PostTransfers(_carry_in("xrt:1", 300), timeout=10)
    assert posted.results[0].status == pb.TRANSFER_STATUS_POSTED
    assert _books(ledger) == (300, True)


@pytest.mark.parametrize(
    "caller", ["", identities.regional(OTHER, "rewards"), identities.regional(OTHER, "identity"), INGEST]
)
def test_an_account_is_read_only_by_callers_in_scope(ledger: RunningServer, caller: str) -> None:
    code, reason, _metadata = _refusal(ledger, caller, "GetBalance", pb.GetBalanceRequest(account=A))
    assert (code, reason) in {
        ("UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING"),
        ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED"),
    }
    with _as(ledger, REWARDS) as channel:  # the region's own rewards reads balances before it spends
        stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        assert stub.GetBalance(pb.GetBalanceRequest(account=A), timeout=10).balance.total_points == 0
