"""The ledger client against a scripted ledger, and closing with a balance against the real ledger (ledger_svc
started in-process on a real port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from identity_svc.clients import GrpcPointsLedger, PointsBalance
from identity_svc.domain.accounts import AccountState
from identity_svc.domain.closing import PointsDisposition
from identity_svc.server import build_services
from identity_svc.store.consent_cache import InProcessConsentCache
from service_kit.db import make_engine, migrate
from service_kit.errors import FailedPrecondition, Unavailable
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from tests.identity.identity_helpers import FakeClock, make_keys, opening
from tests.service_identities import TRUST

# The identity service of region 330000, as the ledger clients under test present it.
IDENTITY = TRUST.server(Settings(service="identity_svc", region_code="330000"))


def _ledger_is_built() -> bool:
    try:
        from ledger_svc import server
    except ImportError:
        return False
    base = ledger_service_pb2_grpc.LedgerServiceServicer
    servicer = getattr(server, "LedgerServiceServicer", base)
    return all(getattr(servicer, name) is not getattr(base, name) for name in ("PostTransfers", "GetBalance"))


needs_real_ledger = pytest.mark.skipif(not _ledger_is_built(), reason="ledger_svc has no PostTransfers/GetBalance yet")


class ScriptedLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    """A stand-in ledger on a real port, to exercise the gRPC client's paths (the real one is tested below)."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.posted: dict[str, lpb.Transfer] = {}

    def GetBalance(self, request: lpb.GetBalanceRequest, context: grpc.ServicerContext) -> lpb.GetBalanceResponse:
        if request.account not in self.balances:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown account")
        balance = lpb.Balance(account=request.account, available_points=self.balances[request.account])
        return lpb.GetBalanceResponse(balance=balance)

    def PostTransfers(
        self, request: lpb.PostTransfersRequest, context: grpc.ServicerContext
    ) -> lpb.PostTransfersResponse:
        results = []
        for transfer in request.transfers:
            if transfer.transfer_id in self.posted:
                results.append(
                    lpb.TransferResult(transfer_id=transfer.transfer_id, status=lpb.TRANSFER_STATUS_ALREADY_POSTED)
                )
            elif self.balances.get(transfer.debit_account, 0) < transfer.amount_points:
                results.append(
                    lpb.TransferResult(
                        transfer_id=transfer.transfer_id,
                        status=lpb.TRANSFER_STATUS_FAILED,
                        failure_reason="INSUFFICIENT_POINTS",
                    )
                )
            else:
                self.balances[transfer.debit_account] -= transfer.amount_points
                self.posted[transfer.transfer_id] = transfer
                results.append(lpb.TransferResult(transfer_id=transfer.transfer_id, status=lpb.TRANSFER_STATUS_POSTED))
        return lpb.PostTransfersResponse(results=results)


def test_the_grpc_ledger_client_reads_balances_and_posts_one_disposal(engine: Engine) -> None:
    scripted = ScriptedLedger()  # type: ignore[abstract]  # only the two methods identity calls
    registration = Registration(
        ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, scripted, "carbon.ledger.v1.LedgerService"
    )
    running = start_server(TRUST.server(Settings(service="ledger_svc", max_workers=2)), [registration])
    client = GrpcPointsLedger(running.address, settings=IDENTITY)
    try:
        assert client.balance("3300000000000000") == PointsBalance(0, 0)  # never credited
        scripted.balances["acct"] = 70
        assert client.balance("acct") == PointsBalance(70, 0)
        client.dispose("identity-close:c1", "acct", PointsDisposition.FORFEIT, 70)
        client.dispose("identity-close:c1", "acct", PointsDisposition.FORFEIT, 70)  # a retry: ALREADY_POSTED
        posted = scripted.posted["identity-close:c1"]
        assert (posted.credit_account, posted.code, scripted.balances["acct"]) == (
            "system:adjustment",
            lpb.TRANSFER_CODE_FORFEIT,
            0,
        )
        with pytest.raises(FailedPrecondition) as refused:
            client.dispose("identity-close:c2", "acct", PointsDisposition.DONATE, 5)
        assert refused.value.reason == "POINTS_DISPOSAL_FAILED"
    finally:
        client.close()
        running.stop()
    with pytest.raises(Unavailable) as down:
        GrpcPointsLedger(running.address, timeout_s=1, settings=IDENTITY).balance("acct")
    assert down.value.reason == "LEDGER_UNAVAILABLE"


@pytest.fixture
def ledger_address(tmp_path: Path) -> Iterator[str]:
    from ledger_svc.server import registrations

    settings = TRUST.server(Settings(service="ledger_svc", region_code="330000", data_dir=tmp_path, max_workers=4))
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate("ledger_svc", engine)
    running = start_server(settings, registrations(settings, engine))
    try:
        yield running.address
    finally:
        running.stop()
        engine.dispose()


def _earn(stub: ledger_service_pb2_grpc.LedgerServiceStub, account: str, amount_points: int) -> None:
    transfer = lpb.Transfer(
        transfer_id=f"earn-{account}",
        debit_account="system:issuance",
        credit_account=account,
        amount_points=amount_points,
        code=lpb.TRANSFER_CODE_EARN,
    )
    [result] = stub.PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]), timeout=10).results
    assert result.status == lpb.TRANSFER_STATUS_POSTED, result.failure_reason


@needs_real_ledger
def test_closing_with_a_balance_donates_it_in_the_real_ledger(engine: Engine, ledger_address: str) -> None:
    client = GrpcPointsLedger(ledger_address, settings=IDENTITY)
    services = build_services(
        Settings(service="identity_svc"),
        engine,
        keys=make_keys(),
        cache=InProcessConsentCache(),
        ledger=client,
        clock=FakeClock(),
    )
    channel = TRUST.allowed_channel(ledger_address, "330000")
    stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
    try:
        account = services.accounts.open_account(opening())[0].account_number
        _earn(stub, account, 1200)
        with pytest.raises(FailedPrecondition) as refused:
            services.closing.close("c0", account, int(PointsDisposition.NONE), "resident")
        assert refused.value.reason == "POINTS_DISPOSITION_REQUIRED"

        view, disposed = services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
        assert (view.state, disposed) == (AccountState.CLOSED, 1200)
        balance = stub.GetBalance(lpb.GetBalanceRequest(account=account), timeout=10).balance
        assert balance.available_points == 0
        posted = stub.GetTransfer(lpb.GetTransferRequest(transfer_id="identity-close:c1"), timeout=10)
        assert (posted.transfer.credit_account, posted.transfer.amount_points) == ("system:donation", 1200)
        assert posted.transfer.code == lpb.TRANSFER_CODE_DONATE

        again, disposed_again = services.closing.close("c1", account, int(PointsDisposition.DONATE), "resident")
        assert (again.state, disposed_again) == (AccountState.CLOSED, 1200)
    finally:
        channel.close()
        client.close()
