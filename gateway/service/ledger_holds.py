"""Holds of concurrent cross-region transfers in their source region's ledger, placed, committed and released in
groups: one HoldBatch, CommitHolds or ReleaseHolds call carries the steps that arrive while the previous calls of
that kind are in flight.

Each transfer's item is decided by the ledger exactly as its unary call (Hold, CommitHold, ReleaseHold) would be,
deduplicated by the same hold id, and answered with its own result: the transfer gets that call's answer, or the
error the call would have raised (a refusal is final; see HoldItemResult). A region that does not answer fails every
member of the group, which is what each would have met alone (the step is postponed and re-sent with the same id). A
final error of the whole call, or a ledger that does not know the batched calls yet (UNIMPLEMENTED), sends the items
again one by one through the unary calls, so one bad item never decides another's outcome; a group of one, and an
item out of time, is sent alone at once. See docs/adr/0615-source-holds-grouped-per-region.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc

from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway.clients import RegionClients, RemoteError, call
from service_kit.coalescing import Coalescer

log = logging.getLogger("carbon.gateway.holds")
# Bounds of a group: more arrivals wait for the next one (the ledger takes up to 1,000 items per call).
MAX_GROUP_ITEMS = 500
# Calls of one kind in flight per region: while these are busy, arrivals gather into the next group.
SLOTS_PER_REGION = 2
CODES = {code.value[0]: code for code in grpc.StatusCode}


class _Kind(NamedTuple):
    """One unary call and its batched twin: how a group is sent and how each item's answer is read."""

    unary: str  # the stub's method for one item
    batch: str  # the stub's method for many
    batch_request: Callable[[list[Any]], Any]
    answer: Callable[[ledger.HoldItemResult], Any]  # the unary call's answer from an item's result


KINDS = {
    "hold": _Kind(
        "Hold",
        "HoldBatch",
        lambda items: ledger.HoldBatchRequest(holds=items),
        lambda result: ledger.HoldResponse(hold=result.hold),
    ),
    "commit": _Kind(
        "CommitHold",
        "CommitHolds",
        lambda items: ledger.CommitHoldsRequest(commits=items),
        lambda result: ledger.CommitHoldResponse(hold=result.hold, result=result.result),
    ),
    "release": _Kind(
        "ReleaseHold",
        "ReleaseHolds",
        lambda items: ledger.ReleaseHoldsRequest(releases=items),
        lambda result: ledger.ReleaseHoldResponse(hold=result.hold),
    ),
}


class _Item(NamedTuple):
    region_code: str
    kind: str
    request: Any
    timeout_s: float  # the group's call ends by its members' earliest deadline


Answer = Any  # the unary call's response, or the RemoteError it would have raised


class LedgerHolds:
    def __init__(self, clients: RegionClients, slots_per_region: int = SLOTS_PER_REGION) -> None:
        self.clients = clients
        self._groups: Coalescer[_Item, Answer] = Coalescer(self._send_group, slots_per_region, MAX_GROUP_ITEMS)

    def hold(self, region_code: str, request: ledger.HoldRequest, timeout_s: float) -> ledger.HoldResponse:
        """As the Hold call: its answer, or RemoteError (final when refused, retryable when the region is silent)."""
        return self._submit(region_code, "hold", request, timeout_s)  # type: ignore[no-any-return]

    def commit(
        self, region_code: str, request: ledger.CommitHoldRequest, timeout_s: float
    ) -> ledger.CommitHoldResponse:
        """As the CommitHold call."""
        return self._submit(region_code, "commit", request, timeout_s)  # type: ignore[no-any-return]

    def release(
        self, region_code: str, request: ledger.ReleaseHoldRequest, timeout_s: float
    ) -> ledger.ReleaseHoldResponse:
        """As the ReleaseHold call."""
        return self._submit(region_code, "release", request, timeout_s)  # type: ignore[no-any-return]

    def send_now(self, region_code: str, kind: str, requests: Sequence[Any], timeout_s: float) -> list[Answer]:
        """Many items of one kind ("hold", "commit", "release") for one region, sent at once as one group (a batch of
        CreateCrossRegionTransfers brings its own): each item's answer as `hold`/`commit`/`release` would give it, the
        RemoteError it would raise in its place."""
        answers: list[Answer] = []
        for start in range(0, len(requests), MAX_GROUP_ITEMS):
            chunk = requests[start : start + MAX_GROUP_ITEMS]
            answers += self._send_group([_Item(region_code, kind, request, timeout_s) for request in chunk])
        return answers

    def _submit(self, region_code: str, kind: str, request: Any, timeout_s: float) -> Any:
        answer = self._groups.submit(f"{region_code}:{kind}", _Item(region_code, kind, request, timeout_s), 1)
        if isinstance(answer, RemoteError):
            raise answer
        return answer

    def _send_group(self, items: Sequence[_Item]) -> list[Answer]:
        region = items[0].region_code
        kind = KINDS[items[0].kind]
        stub = self.clients.ledger(region)
        if len(items) == 1 or any(item.timeout_s <= 0 for item in items):
            return [self._send_alone(stub, kind, item) for item in items]
        request = kind.batch_request([item.request for item in items])
        try:
            response = call(region, getattr(stub, kind.batch), request, min(item.timeout_s for item in items))
        except RemoteError as error:
            if not error.final and error.code is not grpc.StatusCode.UNIMPLEMENTED:
                return [error] * len(items)
            log.warning("a grouped hold call was refused; sending its items one by one", extra={"error": str(error)})
            return [self._send_alone(stub, kind, item) for item in items]
        assert len(response.results) == len(items), "the ledger answers every item"
        return [self._answer(region, kind, result) for result in response.results]

    @staticmethod
    def _send_alone(stub: Any, kind: _Kind, item: _Item) -> Answer:
        try:
            return call(item.region_code, getattr(stub, kind.unary), item.request, item.timeout_s)
        except RemoteError as error:
            return error

    @staticmethod
    def _answer(region: str, kind: _Kind, result: ledger.HoldItemResult) -> Answer:
        if result.status != ledger.HOLD_ITEM_STATUS_FAILED:
            return kind.answer(result)
        metadata = {"field": result.failure_field} if result.failure_field else {}
        code = CODES.get(result.failure_code, grpc.StatusCode.FAILED_PRECONDITION)
        return RemoteError(region, code, result.failure_reason, result.failure_message, metadata)
