"""An in-memory ledger with the real one's idempotency, callable directly or served over gRPC
(carbon.ledger.v1 Hold/CommitHold/ReleaseHold/GetHold/RefundTransfer/PostTransfers/GetBalance).

Used where the real ledger_svc is not there yet (it replaces this automatically once it serves Hold)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from rewards_svc.clients import (
    HoldOrder,
    HoldState,
    HoldView,
    LedgerRefused,
    LedgerUnavailable,
    PostedTransfer,
    TransferOutcome,
)
from service_kit.errors import FailedPrecondition, NotFound


@dataclass
class FakeHold:
    account: str
    amount_points: int
    state: str
    timeout_s: int = 0


@dataclass
class FakeLedger:
    """Balances, holds and transfers in memory, with the real ledger's idempotency; `down` makes it unreachable."""

    balances: dict[str, int] = field(default_factory=dict)
    holds: dict[str, FakeHold] = field(default_factory=dict)
    transfers: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    down: bool = False
    # Hold ids whose next GetHold answers "no such hold": a read that happened before an in-flight Hold landed.
    stale_once: set[str] = field(default_factory=set)
    # The body each refund id was first posted with (original, amount, reason): the real ledger's fingerprint.
    refund_bodies: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    # Donations are posted, then answered as if the answer was lost on the way back.
    lose_donation_answers: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _reachable(self) -> None:
        if self.down:
            raise LedgerUnavailable("ledger down (fake)")

    def fund(self, account: str, points: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + points

    def available(self, account: str) -> int:
        held = sum(h.amount_points for h in self.holds.values() if h.account == account and h.state == "PENDING")
        return self.balances.get(account, 0) - held

    def hold(
        self, hold_id: str, account: str, amount_points: int, timeout_s: int, reference: str, commit_to: str = ""
    ) -> HoldView:
        """Places the hold; with `commit_to`, commits it in the same step, as the real ledger's one transaction."""
        with self.lock:
            self._reachable()
            if hold_id not in self.holds:
                if self.available(account) < amount_points:
                    raise LedgerRefused(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "INSUFFICIENT_POINTS",
                        "not enough points",
                        {"missing_points": str(amount_points - self.available(account))},
                    )
                self.holds[hold_id] = FakeHold(account, amount_points, HoldState.PENDING, timeout_s)
                if commit_to:
                    self._commit(hold_id, commit_to)
            found = self.holds[hold_id]
            return HoldView(hold_id, found.state, found.amount_points)

    def hold_many(self, orders: Sequence[HoldOrder]) -> list[HoldView | LedgerRefused]:
        """HoldBatch: each order exactly as `hold`, a refusal as that order's own answer."""
        self._reachable()
        answers: list[HoldView | LedgerRefused] = []
        for order in orders:
            try:
                answers.append(
                    self.hold(
                        order.hold_id,
                        order.account,
                        order.amount_points,
                        order.timeout_s,
                        order.reference,
                        order.commit_to,
                    )
                )
            except LedgerRefused as refused:
                answers.append(refused)
        return answers

    def commit_hold(self, hold_id: str, credit_account: str) -> HoldView:
        with self.lock:
            self._reachable()
            return self._commit(hold_id, credit_account)

    def _commit(self, hold_id: str, credit_account: str) -> HoldView:
        found = self.holds[hold_id]
        if found.state == HoldState.PENDING:
            found.state = HoldState.COMMITTED
            self.balances[found.account] -= found.amount_points
            self.fund(credit_account, found.amount_points)
            self.transfers[hold_id] = (found.account, credit_account, found.amount_points)
        elif found.state != HoldState.COMMITTED:
            raise LedgerRefused(grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_PENDING", found.state, {})
        return HoldView(hold_id, found.state, found.amount_points)

    def release_hold(self, hold_id: str) -> HoldView:
        with self.lock:
            self._reachable()
            found = self.holds[hold_id]
            if found.state == HoldState.PENDING:
                found.state = HoldState.RELEASED
            return HoldView(hold_id, found.state, found.amount_points)

    def get_hold(self, hold_id: str) -> HoldView | None:
        with self.lock:
            self._reachable()
            if hold_id in self.stale_once:
                self.stale_once.discard(hold_id)
                return None
            found = self.holds.get(hold_id)
            return None if found is None else HoldView(hold_id, found.state, found.amount_points)

    def refund(self, refund_id: str, original_transfer_id: str, amount_points: int, reason: str) -> TransferOutcome:
        with self.lock:
            self._reachable()
            body = (original_transfer_id, amount_points, reason)
            if self.refund_bodies.setdefault(refund_id, body) != body:
                raise LedgerRefused(
                    grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED", "refund_id used with another body", {}
                )
            if refund_id not in self.transfers:
                debit, credit, _amount = self.transfers[original_transfer_id]
                self.transfers[refund_id] = (credit, debit, amount_points)
                self.balances[credit] -= amount_points
                self.fund(debit, amount_points)
            return TransferOutcome(True)

    def find_transfer(self, transfer_id: str) -> PostedTransfer | None:
        with self.lock:
            self._reachable()
            if transfer_id not in self.transfers:
                return None
            debit, credit, amount = self.transfers[transfer_id]
            if transfer_id in self.refund_bodies:
                return PostedTransfer(transfer_id, "REFUND", debit, credit, amount, self.refund_bodies[transfer_id][0])
            kind = "DONATE" if credit == "system:donation" else "OTHER"
            return PostedTransfer(transfer_id, kind, debit, credit, amount, self.references.get(transfer_id, ""))

    def donate(self, transfer_id: str, account: str, amount_points: int, reference: str) -> TransferOutcome:
        with self.lock:
            self._reachable()
            if self.references.get(transfer_id, reference) != reference:
                return TransferOutcome(False, "IDEMPOTENCY_KEY_REUSED", "transfer_id used with another body")
            if transfer_id not in self.transfers:
                if self.available(account) < amount_points:
                    return TransferOutcome(False, "INSUFFICIENT_POINTS", "not enough points")
                self.transfers[transfer_id] = (account, "system:donation", amount_points)
                self.references[transfer_id] = reference
                self.balances[account] -= amount_points
                self.fund("system:donation", amount_points)
            if self.lose_donation_answers:
                raise LedgerUnavailable("answer lost (fake)")
            return TransferOutcome(True)

    def available_points(self, account: str) -> int:
        with self.lock:
            self._reachable()
            return self.available(account)


_STATES = {
    HoldState.PENDING: pb.HOLD_STATE_PENDING,
    HoldState.COMMITTED: pb.HOLD_STATE_COMMITTED,
    HoldState.RELEASED: pb.HOLD_STATE_RELEASED,
    HoldState.EXPIRED: pb.HOLD_STATE_EXPIRED,
}


def _info(view: HoldView) -> pb.HoldInfo:
    return pb.HoldInfo(hold_id=view.hold_id, state=_STATES[view.state], amount_points=view.amount_points)


def _raise(refused: LedgerRefused) -> None:
    raise FailedPrecondition(refused.reason, refused.message, refused.metadata)


class FakeLedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger

    def Hold(self, request: pb.HoldRequest, context: grpc.ServicerContext) -> pb.HoldResponse:
        try:
            view = self.ledger.hold(
                request.hold_id,
                request.account,
                request.amount_points,
                request.timeout.seconds,
                request.reference,
                request.commit_to_account,
            )
        except LedgerRefused as refused:
            _raise(refused)
        return pb.HoldResponse(hold=_info(view))

    def CommitHold(self, request: pb.CommitHoldRequest, context: grpc.ServicerContext) -> pb.CommitHoldResponse:
        try:
            return pb.CommitHoldResponse(hold=_info(self.ledger.commit_hold(request.hold_id, request.credit_account)))
        except KeyError:
            raise NotFound("HOLD_NOT_FOUND", request.hold_id) from None
        except LedgerRefused as refused:
            _raise(refused)
            raise

    def ReleaseHold(self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext) -> pb.ReleaseHoldResponse:
        try:
            return pb.ReleaseHoldResponse(hold=_info(self.ledger.release_hold(request.hold_id)))
        except KeyError:
            raise NotFound("HOLD_NOT_FOUND", request.hold_id) from None

    def GetHold(self, request: pb.GetHoldRequest, context: grpc.ServicerContext) -> pb.GetHoldResponse:
        view = self.ledger.get_hold(request.hold_id)
        if view is None:
            raise NotFound("HOLD_NOT_FOUND", request.hold_id)
        return pb.GetHoldResponse(hold=_info(view))

    def RefundTransfer(
        self, request: pb.RefundTransferRequest, context: grpc.ServicerContext
    ) -> pb.RefundTransferResponse:
        self.ledger.refund(request.refund_id, request.original_transfer_id, request.amount_points, request.reason)
        return pb.RefundTransferResponse(
            result=pb.TransferResult(transfer_id=request.refund_id, status=pb.TRANSFER_STATUS_POSTED)
        )

    def PostTransfers(
        self, request: pb.PostTransfersRequest, context: grpc.ServicerContext
    ) -> pb.PostTransfersResponse:
        results = []
        for transfer in request.transfers:
            if transfer.code == pb.TRANSFER_CODE_EARN:
                with self.ledger.lock:
                    if transfer.transfer_id not in self.ledger.transfers:
                        self.ledger.transfers[transfer.transfer_id] = (
                            transfer.debit_account,
                            transfer.credit_account,
                            transfer.amount_points,
                        )
                        self.ledger.fund(transfer.credit_account, transfer.amount_points)
                outcome = TransferOutcome(True)
            else:
                outcome = self.ledger.donate(
                    transfer.transfer_id, transfer.debit_account, transfer.amount_points, transfer.reference
                )
            results.append(
                pb.TransferResult(
                    transfer_id=transfer.transfer_id,
                    status=pb.TRANSFER_STATUS_POSTED if outcome.posted else pb.TRANSFER_STATUS_FAILED,
                    failure_reason=outcome.failure_reason,
                )
            )
        return pb.PostTransfersResponse(results=results)

    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        return pb.GetBalanceResponse(
            balance=pb.Balance(
                account=request.account,
                available_points=self.ledger.available_points(request.account),
                total_points=self.ledger.balances.get(request.account, 0),
            )
        )
