"""Clients of other services: the ledger as rewards_svc sees it, a few calls over gRPC (carbon.ledger.v1), each with
a deadline.

Failures come back as two kinds: LedgerRefused (final: the ledger said no, with its status code and reason) and
LedgerUnavailable (the outcome is unknown or the ledger is down: retry with the same idempotency key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf import duration_pb2

from carbon.ledger.v1 import ledger_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from service_kit.accounts import DONATION_ACCOUNT
from service_kit.channels import open_channel
from service_kit.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from service_kit.settings import Settings
from service_kit.status import error_details

DEFAULT_DEADLINE_S = 5.0

_FINAL_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
}


class LedgerRefused(Exception):
    """The ledger refused the call for good."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(f"{code.name} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata

    @property
    def key_taken(self) -> bool:
        """The idempotency key was used before with another body (ALREADY_EXISTS): not a "no" to this request, whose
        effect may well be in the ledger already."""
        return self.code == grpc.StatusCode.ALREADY_EXISTS

    def as_domain_error(self) -> DomainError:
        """The refusal as rewards' own error, keeping its code and reason (INSUFFICIENT_POINTS stays that)."""
        metadata = dict(self.metadata)
        if self.code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument(metadata.pop("field", "account_number"), self.message, self.reason, metadata)
        if self.code == grpc.StatusCode.NOT_FOUND:
            return NotFound(self.reason or "NOT_FOUND", self.message, metadata)
        return FailedPrecondition(self.reason or "LEDGER_REFUSED", self.message, metadata)


class LedgerUnavailable(Exception):
    """The ledger did not answer in time or is down; whether the call took effect is unknown."""


class HoldBatchUnsupported(Exception):
    """The ledger predates HoldBatch (UNIMPLEMENTED): nothing was done; send each Hold alone."""


class HoldState:
    PENDING = "PENDING"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class HoldView:
    hold_id: str
    state: str
    amount_points: int


@dataclass(frozen=True)
class HoldOrder:
    """One Hold as sent (alone or in a batch): the ledger's fields, with `commit_to` empty for a hold left pending."""

    hold_id: str
    account: str
    amount_points: int
    timeout_s: int
    reference: str
    commit_to: str = ""


@dataclass(frozen=True)
class TransferOutcome:
    """A posted (or already posted) transfer, or a failed one with the ledger's reason."""

    posted: bool
    failure_reason: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class PostedTransfer:
    """A transfer the ledger has posted, as far as rewards checks one: its kind ("REFUND", "DONATE" or the code's
    name), accounts, points and reference (a refund's reference is the transfer it refunds)."""

    transfer_id: str
    kind: str
    debit_account: str
    credit_account: str
    amount_points: int
    reference: str


class Ledger(Protocol):
    def hold(
        self, hold_id: str, account: str, amount_points: int, timeout_s: int, reference: str, commit_to: str = ""
    ) -> HoldView:
        """Holds the points; with `commit_to`, commits them whole to that account in the same call (an older ledger
        ignores it and answers a PENDING hold)."""
        ...

    def hold_many(self, orders: Sequence[HoldOrder]) -> list[HoldView | LedgerRefused]:
        """Many Holds in one call, each exactly as `hold` sends it and with its own answer: its hold, or its refusal
        (never the others'). Raises LedgerUnavailable for the whole call, HoldBatchUnsupported when the ledger has no
        batch call (nothing was done)."""
        ...

    def commit_hold(self, hold_id: str, credit_account: str) -> HoldView: ...
    def release_hold(self, hold_id: str) -> HoldView: ...
    def get_hold(self, hold_id: str) -> HoldView | None: ...
    def refund(self, refund_id: str, original_transfer_id: str, amount_points: int, reason: str) -> TransferOutcome: ...
    def find_transfer(self, transfer_id: str) -> PostedTransfer | None: ...
    def donate(self, transfer_id: str, account: str, amount_points: int, reference: str) -> TransferOutcome: ...
    def available_points(self, account: str) -> int: ...


_HOLD_STATES = {
    pb.HOLD_STATE_PENDING: HoldState.PENDING,
    pb.HOLD_STATE_COMMITTED: HoldState.COMMITTED,
    pb.HOLD_STATE_RELEASED: HoldState.RELEASED,
    pb.HOLD_STATE_EXPIRED: HoldState.EXPIRED,
}


def _view(info: pb.HoldInfo) -> HoldView:
    state = _HOLD_STATES.get(info.state, HoldState.PENDING)
    return HoldView(hold_id=info.hold_id, state=state, amount_points=info.amount_points)


def _outcome(result: pb.TransferResult) -> TransferOutcome:
    if result.status in (pb.TRANSFER_STATUS_POSTED, pb.TRANSFER_STATUS_ALREADY_POSTED):
        return TransferOutcome(posted=True)
    return TransferOutcome(
        posted=False, failure_reason=result.failure_reason or "TRANSFER_FAILED", failure_message=result.failure_message
    )


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _item_answer(result: pb.HoldItemResult) -> HoldView | LedgerRefused:
    """One item of a batch: what the unary call would have answered, its refusal as the exception it would raise."""
    if result.status != pb.HOLD_ITEM_STATUS_FAILED:
        return _view(result.hold)
    code = _STATUS_CODES.get(result.failure_code, grpc.StatusCode.FAILED_PRECONDITION)
    metadata = {"field": result.failure_field} if result.failure_field else {}
    return LedgerRefused(code, result.failure_reason, result.failure_message, metadata)


def _translate(error: grpc.RpcError) -> Exception:
    details = error_details(error)
    if details.code in _FINAL_CODES:
        return LedgerRefused(details.code, details.reason, details.message, details.metadata)
    return LedgerUnavailable(f"ledger {details.code.name}: {details.message}")


def _hold_request(order: HoldOrder) -> pb.HoldRequest:
    return pb.HoldRequest(
        hold_id=order.hold_id,
        account=order.account,
        amount_points=order.amount_points,
        timeout=duration_pb2.Duration(seconds=order.timeout_s),
        code=pb.TRANSFER_CODE_REDEEM,
        reference=order.reference,
        commit_to_account=order.commit_to,
    )


class GrpcLedger:
    """The ledger over one long-lived channel (create it after any fork); with settings naming a CA it is mutual TLS
    with this process's certificate."""

    def __init__(self, address: str, deadline_s: float = DEFAULT_DEADLINE_S, settings: Settings | None = None) -> None:
        self._channel = open_channel(address, settings)
        self._stub = pb_grpc.LedgerServiceStub(self._channel)
        self._deadline_s = deadline_s

    @classmethod
    def from_settings(cls, settings: Settings) -> GrpcLedger:
        address = settings.extra.get("CARBON_LEDGER_ADDRESS", "")
        if not address:
            raise ValueError("CARBON_LEDGER_ADDRESS is not set: rewards_svc needs its region's ledger")
        deadline_s = float(settings.extra.get("CARBON_LEDGER_DEADLINE_S", DEFAULT_DEADLINE_S))
        return cls(address, deadline_s, settings)

    def close(self) -> None:
        self._channel.close()

    def hold(
        self, hold_id: str, account: str, amount_points: int, timeout_s: int, reference: str, commit_to: str = ""
    ) -> HoldView:
        request = _hold_request(HoldOrder(hold_id, account, amount_points, timeout_s, reference, commit_to))
        try:
            return _view(self._stub.Hold(request, timeout=self._deadline_s).hold)
        except grpc.RpcError as error:
            raise _translate(error) from None

    def hold_many(self, orders: Sequence[HoldOrder]) -> list[HoldView | LedgerRefused]:
        request = pb.HoldBatchRequest(holds=[_hold_request(order) for order in orders])
        try:
            response = self._stub.HoldBatch(request, timeout=self._deadline_s)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise HoldBatchUnsupported() from None
            raise _translate(error) from None
        return [_item_answer(result) for result in response.results]

    def commit_hold(self, hold_id: str, credit_account: str) -> HoldView:
        request = pb.CommitHoldRequest(hold_id=hold_id, credit_account=credit_account)
        try:
            return _view(self._stub.CommitHold(request, timeout=self._deadline_s).hold)
        except grpc.RpcError as error:
            raise _translate(error) from None

    def release_hold(self, hold_id: str) -> HoldView:
        try:
            return _view(self._stub.ReleaseHold(pb.ReleaseHoldRequest(hold_id=hold_id), timeout=self._deadline_s).hold)
        except grpc.RpcError as error:
            raise _translate(error) from None

    def get_hold(self, hold_id: str) -> HoldView | None:
        try:
            return _view(self._stub.GetHold(pb.GetHoldRequest(hold_id=hold_id), timeout=self._deadline_s).hold)
        except grpc.RpcError as error:
            translated = _translate(error)
            if isinstance(translated, LedgerRefused) and translated.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise translated from None

    def refund(self, refund_id: str, original_transfer_id: str, amount_points: int, reason: str) -> TransferOutcome:
        request = pb.RefundTransferRequest(
            refund_id=refund_id, original_transfer_id=original_transfer_id, amount_points=amount_points, reason=reason
        )
        try:
            return _outcome(self._stub.RefundTransfer(request, timeout=self._deadline_s).result)
        except grpc.RpcError as error:
            raise _translate(error) from None

    def find_transfer(self, transfer_id: str) -> PostedTransfer | None:
        """The posted transfer with this id (GetTransfer), or None when there is none."""
        try:
            response = self._stub.GetTransfer(pb.GetTransferRequest(transfer_id=transfer_id), timeout=self._deadline_s)
        except grpc.RpcError as error:
            translated = _translate(error)
            if isinstance(translated, LedgerRefused) and translated.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise translated from None
        transfer = response.transfer
        return PostedTransfer(
            transfer_id=transfer.transfer_id,
            kind=pb.TransferCode.Name(transfer.code).removeprefix("TRANSFER_CODE_"),
            debit_account=transfer.debit_account,
            credit_account=transfer.credit_account,
            amount_points=transfer.amount_points,
            reference=transfer.reference,
        )

    def donate(self, transfer_id: str, account: str, amount_points: int, reference: str) -> TransferOutcome:
        transfer = pb.Transfer(
            transfer_id=transfer_id,
            debit_account=account,
            credit_account=DONATION_ACCOUNT,
            amount_points=amount_points,
            code=pb.TRANSFER_CODE_DONATE,
            reference=reference,
        )
        try:
            response = self._stub.PostTransfers(pb.PostTransfersRequest(transfers=[transfer]), timeout=self._deadline_s)
        except grpc.RpcError as error:
            raise _translate(error) from None
        return _outcome(response.results[0])

    def available_points(self, account: str) -> int:
        try:
            response = self._stub.GetBalance(pb.GetBalanceRequest(account=account), timeout=self._deadline_s)
        except grpc.RpcError as error:
            raise _translate(error) from None
        return int(response.balance.available_points)
