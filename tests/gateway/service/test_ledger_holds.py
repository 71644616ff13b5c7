"""Source holds of concurrent transfers grouped into one batched ledger call: each transfer still gets exactly the
answer (or the error) its unary call would have given."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from gateway.clients import RemoteError
from gateway.service.ledger_holds import LedgerHolds, _Item
from tests.gateway.federation import Federation
from tests.gateway.service.test_cross_region_transfers import COMMITTED, RELEASED, funded


class Silent(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return self._code  # type: ignore[no-any-return]

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def details(self) -> str:
        return "no answer"

    def trailing_metadata(self) -> tuple[()]:
        return ()


class FakeLedger:
    """Answers HoldBatch item by item (an account named "poor" is refused); records the calls made."""

    def __init__(self, batch_error: grpc.StatusCode | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.batch_error = batch_error

    def HoldBatch(self, request: lpb.HoldBatchRequest, timeout: float) -> lpb.HoldBatchResponse:
        self.calls.append(("HoldBatch", len(request.holds)))
        if self.batch_error is not None:
            raise Silent(self.batch_error)
        return lpb.HoldBatchResponse(results=[self._result(hold) for hold in request.holds])

    def Hold(self, request: lpb.HoldRequest, timeout: float) -> lpb.HoldResponse:
        self.calls.append(("Hold", 1))
        if request.account == "poor":
            raise Silent(grpc.StatusCode.FAILED_PRECONDITION)
        return lpb.HoldResponse(hold=self._result(request).hold)

    def _result(self, hold: lpb.HoldRequest) -> lpb.HoldItemResult:
        if hold.account == "poor":
            return lpb.HoldItemResult(
                hold_id=hold.hold_id,
                status=lpb.HOLD_ITEM_STATUS_FAILED,
                failure_code=grpc.StatusCode.FAILED_PRECONDITION.value[0],
                failure_reason="INSUFFICIENT_POINTS",
            )
        info = lpb.HoldInfo(hold_id=hold.hold_id, state=lpb.HOLD_STATE_PENDING, amount_points=hold.amount_points)
        return lpb.HoldItemResult(hold_id=hold.hold_id, status=lpb.HOLD_ITEM_STATUS_DONE, hold=info)


class Clients:
    def __init__(self, stub: Any) -> None:
        self.stub = stub

    def ledger(self, region_code: str) -> Any:
        return self.stub


def holds(*accounts: str) -> list[_Item]:
    return [
        _Item("330000", "hold", lpb.HoldRequest(hold_id=f"xrt:{n}", account=a, amount_points=5), 5.0)
        for n, a in enumerate(accounts)
    ]


def test_a_group_is_one_batched_call_and_each_item_gets_its_own_answer() -> None:
    fake = FakeLedger()
    answers = LedgerHolds(Clients(fake))._send_group(holds("rich", "poor", "rich"))  # type: ignore[arg-type]
    assert fake.calls == [("HoldBatch", 3)]
    assert [a.hold.hold_id for a in (answers[0], answers[2])] == ["xrt:0", "xrt:2"]
    refused = answers[1]
    assert isinstance(refused, RemoteError) and refused.final
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")


def test_a_silent_region_fails_every_member_for_a_retry() -> None:
    fake = FakeLedger(batch_error=grpc.StatusCode.UNAVAILABLE)
    answers = LedgerHolds(Clients(fake))._send_group(holds("rich", "rich"))  # type: ignore[arg-type]
    assert all(isinstance(a, RemoteError) and not a.final for a in answers)
    assert fake.calls == [("HoldBatch", 2)]


@pytest.mark.parametrize("code", [grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INVALID_ARGUMENT])
def test_a_ledger_without_batches_or_refusing_the_call_gets_the_items_one_by_one(code: grpc.StatusCode) -> None:
    fake = FakeLedger(batch_error=code)
    answers = LedgerHolds(Clients(fake))._send_group(holds("rich", "poor"))  # type: ignore[arg-type]
    assert fake.calls == [("HoldBatch", 2), ("Hold", 1), ("Hold", 1)]
    assert answers[0].hold.state == lpb.HOLD_STATE_PENDING
    assert isinstance(answers[1], RemoteError) and answers[1].final


def test_concurrent_transfers_each_finish_as_alone_with_the_books_balanced(
    federation: Federation, gateway: Any
) -> None:
    pairs = [funded(federation, 1_000) for _ in range(8)]

    def one(n: int) -> Any:
        source, target = pairs[n % len(pairs)]
        return federation.transfer(f"c{n}", source, target, 2_000 if n == 3 else 100)

    with ThreadPoolExecutor(8) as pool:
        transfers = list(pool.map(one, range(16)))
    assert (transfers[3].state, transfers[3].failure_reason) == (RELEASED, "INSUFFICIENT_POINTS")
    assert all(t.state == COMMITTED for n, t in enumerate(transfers) if n != 3)
    assert federation.clearing_sum() == 0
    assert federation.conserved("330000") and federation.conserved("110000")
    for n, (source, target) in enumerate(pairs):
        moved = 100 * 2 if n != 3 else 100  # transfers n and n + 8 share a pair; #3 was refused
        assert federation.balance("330000", source).total_points == 1_000 - moved
        assert federation.balance("110000", target).total_points == moved
