"""Clients of other services: the region's ledger, as identity_svc needs it when closing an account (read a balance,
dispose of the points), and the national gateway, which judges a guardian of another region (ADR 0209)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import grpc

from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from identity_svc.domain.closing import PointsDisposition
from identity_svc.domain.guardians import GuardianAnswer, GuardianStanding
from service_kit.accounts import ADJUSTMENT_ACCOUNT, DONATION_ACCOUNT, region_of
from service_kit.channels import open_channel
from service_kit.errors import FailedPrecondition, Unavailable
from service_kit.peers import Peer
from service_kit.settings import Settings
from service_kit.status import error_details

LEDGER_TIMEOUT_S = 5.0
# The gateway asks the guardian's region within its own call timeout; this bounds the whole question.
GATEWAY_TIMEOUT_S = 5.0


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


class GatewayGuardians(Peer[gateway_service_pb2_grpc.GatewayServiceStub]):
    """GatewayService.CheckGuardian: a guardian of another region judged by their home region (ADR 0209). Only the
    account number and the acting platform go out; only the standing comes back."""

    def __init__(self, address: str, deadline_s: float = GATEWAY_TIMEOUT_S, settings: Settings | None = None) -> None:
        super().__init__("gateway", gateway_service_pb2_grpc.GatewayServiceStub, address, deadline_s, settings)

    def answer(self, account_number: str, platform: str) -> GuardianAnswer:
        request = gateway_service_pb2.CheckGuardianRequest(guardian_account_number=account_number, platform=platform)
        try:
            response = self.stub().CheckGuardian(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise _guardian_unanswered(error, region_of(account_number)) from None
        known = response.standing in GuardianStanding._value2member_map_
        standing = GuardianStanding(response.standing) if known else GuardianStanding.UNSPECIFIED
        if standing == GuardianStanding.UNSPECIFIED:
            raise Unavailable(
                "GATEWAY_BAD_ANSWER",
                "the gateway gave no standing for the guardian; retry",
                {"field": "guardian_account_number", "region": region_of(account_number)},
            )
        return GuardianAnswer(standing, response.platform_bound, response.region_code or region_of(account_number))


def _guardian_unanswered(error: grpc.RpcError, region: str) -> FailedPrecondition | Unavailable:
    """Why the guardian's standing is not known: a region the gateway does not federate is no guardian's home
    (FAILED_PRECONDITION GUARDIAN_NOT_FOUND); anything else is the gateway's or the region's silence (UNAVAILABLE,
    retry: nothing was recorded)."""
    details = error_details(error)
    metadata = {"field": "guardian_account_number", "region": region}
    if details.reason == "REGION_NOT_FEDERATED":
        return FailedPrecondition("GUARDIAN_NOT_FOUND", f"region {region} is not federated: no such guardian", metadata)
    if details.reason == "REGION_UNAVAILABLE":
        return Unavailable(
            "GUARDIAN_REGION_UNAVAILABLE", f"the guardian's home region {region} did not answer; retry", metadata
        )
    return Unavailable(
        "GATEWAY_UNAVAILABLE",
        f"the gateway could not check the guardian in region {region}; retry",
        {**metadata, "code": details.code.name, "gateway_reason": details.reason},
    )
