"""A real ledger_svc on a real port whose calls a test can slow down or cut off, one method at a time.

`answer_late`: the ledger does the work, commits it, and only then waits before answering; a caller with a shorter
deadline gives up on a call that took effect. `arrive_late`: the request waits before the ledger sees it; it takes
effect after the caller gave up. `cut_off`: the method answers UNAVAILABLE without doing anything (an outage).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
import pytest

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from ledger_svc.server import registrations
from rewards_svc.clients import GrpcLedger
from rewards_svc.server import RewardsServices, build_services
from service_kit import db
from service_kit.clock import Clock
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from tests.service_identities import TRUST


@dataclass
class Faults:
    """What the ledger does to each method's calls now; read by every call, changed by the test at any time."""

    answer_late: dict[str, float] = field(default_factory=dict)
    arrive_late: dict[str, float] = field(default_factory=dict)
    cut_off: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    def heal(self) -> None:
        self.answer_late.clear()
        self.arrive_late.clear()
        self.cut_off.clear()

    def settle(self, timeout_s: float = 10) -> None:
        """Waits until no call is inside the ledger (a late one has done its work and answered)."""
        with self.lock:
            assert self.lock.wait_for(lambda: self.in_flight == 0, timeout_s), "a ledger call never finished"


class _FaultyServicer:
    """The real servicer behind the faults: every RPC method goes through `_call`."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not name[:1].isupper() or not callable(method):
            return method
        return lambda request, context: self._call(name, method, request, context)

    def _call(self, name: str, method: Callable[[Any, Any], Any], request: Any, context: grpc.ServicerContext) -> Any:
        # Rewards sends its Holds in HoldBatch calls: the same holds, so faulted and counted as Hold.
        name = "Hold" if name == "HoldBatch" else name
        faults = self._faults
        with faults.lock:
            faults.calls[name] += 1
            if name in faults.cut_off:
                context.abort(grpc.StatusCode.UNAVAILABLE, "ledger cut off by the test")
            faults.in_flight += 1
            arrive, answer = faults.arrive_late.get(name, 0.0), faults.answer_late.get(name, 0.0)
        try:
            time.sleep(arrive)
            response = method(request, context)
            time.sleep(answer)
            return response
        finally:
            with faults.lock:
                faults.in_flight -= 1
                faults.lock.notify_all()


@dataclass
class SlowLedger:
    address: str
    faults: Faults
    stub: pb_grpc.LedgerServiceStub

    def fund(self, account: str, points: int, transfer_id: str) -> None:
        transfer = pb.Transfer(
            transfer_id=transfer_id,
            debit_account="system:issuance",
            credit_account=account,
            amount_points=points,
            code=pb.TRANSFER_CODE_EARN,
        )
        result = self.stub.PostTransfers(pb.PostTransfersRequest(transfers=[transfer]), timeout=10).results[0]
        assert result.status == pb.TRANSFER_STATUS_POSTED, result

    def balance(self, account: str) -> pb.Balance:
        return self.stub.GetBalance(pb.GetBalanceRequest(account=account), timeout=10).balance

    def hold(self, hold_id: str) -> pb.HoldInfo | None:
        try:
            return self.stub.GetHold(pb.GetHoldRequest(hold_id=hold_id), timeout=10).hold
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def verify(self) -> None:
        """The journal's hash chain verifies and every point is accounted for."""
        verified = self.stub.VerifyJournal(pb.VerifyJournalRequest(), timeout=30)
        assert verified.ok, verified
        conservation = self.stub.CheckConservation(pb.CheckConservationRequest(), timeout=30)
        assert conservation.balanced, conservation


def start_slow_ledger(region: str, database_url: str) -> tuple[SlowLedger, Callable[[], None]]:
    """A ledger of `region` over `database_url` (migrated here), and what stops it."""
    settings = TRUST.server(Settings(service="ledger_svc", region_code=region, port=0, max_workers=32))
    engine = db.make_engine(database_url)
    db.migrate("ledger_svc", engine)
    faults = Faults()
    wrapped = [
        Registration(item.add_to_server, _FaultyServicer(item.servicer, faults), item.full_name, item.on_stop)
        for item in registrations(settings, engine)
    ]
    server = start_server(settings, wrapped)
    channel = TRUST.allowed_channel(server.address, region)

    def stop() -> None:
        channel.close()
        server.stop()
        engine.dispose()

    return SlowLedger(server.address, faults, pb_grpc.LedgerServiceStub(channel)), stop


@pytest.fixture
def slow_ledger(tmp_path: Path) -> Iterator[SlowLedger]:
    ledger, stop = start_slow_ledger("310000", f"sqlite:///{tmp_path / 'slow-ledger.db'}")
    yield ledger
    ledger.faults.heal()
    stop()


# A deadline no healthy call comes near, even on a loaded machine: only the calls a test slows down time out.
PATIENT_S = 15.0
# One that the calls a test slows down (by more than it) exceed.
IMPATIENT_S = 1.0


class MakeRewards(Protocol):
    def __call__(self, deadline_s: float = PATIENT_S, **extra: str) -> RewardsServices: ...


@pytest.fixture
def rewards_over_slow_ledger(database_url: str, slow_ledger: SlowLedger, clock: Clock) -> Iterator[MakeRewards]:
    """Rewards use cases of region 310000 over `database_url` and the slow ledger; each call makes another instance
    (same database) whose ledger client has its own deadline and whose settings add `extra`."""
    engine = db.make_engine(database_url)
    db.migrate("rewards_svc", engine)
    clients: list[GrpcLedger] = []

    def make(deadline_s: float = PATIENT_S, **extra: str) -> RewardsServices:
        settings = TRUST.server(Settings(service="rewards_svc", region_code="310000", extra=extra))
        clients.append(GrpcLedger(slow_ledger.address, deadline_s=deadline_s, settings=settings))
        return build_services(settings, engine, ledger=clients[-1], clock=clock)

    yield make
    for client in clients:
        client.close()
    engine.dispose()
