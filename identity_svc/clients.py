"""Clients of other services: the region's ledger, as identity_svc needs it when closing an account (read a balance,
dispose of the points)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import grpc

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from identity_svc.domain.closing import PointsDisposition
from service_kit.accounts import ADJUSTMENT_ACCOUNT, DONATION_ACCOUNT
from service_kit.channels import open_channel
from service_kit.errors import FailedPrecondition, Unavailable
from service_kit.settings import Settings

LEDGER_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PointsBalance:
    available_points: int
    held_points: int


class PointsLedger(Protocol):
    def balance(self, account_number: str) -> PointsBalance: ...

    def dispose(
        self, transfer_id: str, account_number: str, disposition: PointsDisposition, amount_points: int
    ) -> None:
        """Moves the points off the account; a repeat with the same transfer id changes nothing."""
        ...


def _unavailable(error: grpc.RpcError) -> Unavailable:
    code = error.code() if hasattr(error, "code") else None
    return Unavailable("LEDGER_UNAVAILABLE", "the ledger could not be reached; retry", {"code": str(code)})


class GrpcPointsLedger:
    """carbon.ledger.v1 over gRPC. The channel is created on first use, never at import (fork safety); with settings
    naming a CA it is mutual TLS with this process's certificate."""

    def __init__(self, address: str, timeout_s: float = LEDGER_TIMEOUT_S, settings: Settings | None = None) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._settings = settings
        self._stub: ledger_service_pb2_grpc.LedgerServiceStub | None = None
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def _ledger(self) -> ledger_service_pb2_grpc.LedgerServiceStub:
        with self._lock:
            if self._stub is None:
                self._channel = open_channel(self._address, self._settings)
                self._stub = ledger_service_pb2_grpc.LedgerServiceStub(self._channel)
            return self._stub

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub = None, None

    def balance(self, account_number: str) -> PointsBalance:
        request = ledger_service_pb2.GetBalanceRequest(account=account_number)
        try:
            response = self._ledger().GetBalance(request, timeout=self._timeout_s)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                return PointsBalance(0, 0)  # never credited: nothing to dispose of
            raise _unavailable(error) from None
        return PointsBalance(response.balance.available_points, response.balance.held_points)

    def dispose(
        self, transfer_id: str, account_number: str, disposition: PointsDisposition, amount_points: int
    ) -> None:
        donate = disposition is PointsDisposition.DONATE
        transfer = ledger_service_pb2.Transfer(
            transfer_id=transfer_id,
            debit_account=account_number,
            credit_account=DONATION_ACCOUNT if donate else ADJUSTMENT_ACCOUNT,
            amount_points=amount_points,
            code=ledger_service_pb2.TRANSFER_CODE_DONATE if donate else ledger_service_pb2.TRANSFER_CODE_FORFEIT,
            reference=f"account-closure:{account_number}",
        )
        request = ledger_service_pb2.PostTransfersRequest(transfers=[transfer])
        try:
            response = self._ledger().PostTransfers(request, timeout=self._timeout_s)
        except grpc.RpcError as error:
            raise _unavailable(error) from None
        result = response.results[0]
        if result.status in (
            ledger_service_pb2.TRANSFER_STATUS_POSTED,
            ledger_service_pb2.TRANSFER_STATUS_ALREADY_POSTED,
        ):
            return
        raise FailedPrecondition(
            "POINTS_DISPOSAL_FAILED",
            "the ledger refused to move the remaining points; the account stays open",
            {"ledger_reason": result.failure_reason},
        )
