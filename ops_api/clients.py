"""gRPC stubs for each region's services and the gateway, and the one way the API calls them.

Channels are created on first use (never at import, never before a fork) and reused. Every call carries a deadline;
every failure comes back as a Problem with the service's reason code (problems.from_rpc_error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2_grpc
from ops_api.problems import Problem, from_rpc_error
from service_kit.errors import DomainError
from service_kit.regions import RegionRegistry
from service_kit.topology import RegionEntry

Response = TypeVar("Response")
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def problem_from_domain(error: DomainError) -> Problem:
    """Registry refusals (bad account number, region not federated) as problems, same mapping as gRPC errors."""
    from ops_api.problems import HTTP_STATUS

    return Problem(HTTP_STATUS.get(error.code, 500), error.reason, error.message, error.metadata)


class Services:
    def __init__(self, registry: RegionRegistry, gateway_address: str, timeout_s: float, gateway_key: str = "") -> None:
        self.registry = registry
        self.gateway_address = gateway_address
        self.timeout_s = timeout_s
        self._gateway_metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {gateway_key}"),) if gateway_key else ()
        )
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _channel(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                self._channels[address] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()

    # --- where ---
    def region(self, region_code: str) -> RegionEntry:
        try:
            return self.registry.region(region_code)
        except DomainError as error:
            raise problem_from_domain(error) from None

    def home(self, account_number: str) -> RegionEntry:
        try:
            return self.registry.route(account_number)
        except DomainError as error:
            raise problem_from_domain(error) from None

    # --- stubs ---
    def identity(self, region: RegionEntry) -> identity_service_pb2_grpc.IdentityServiceStub:
        return identity_service_pb2_grpc.IdentityServiceStub(self._channel(region.identity_address))

    def ingest(self, region: RegionEntry) -> ingest_service_pb2_grpc.IngestServiceStub:
        return ingest_service_pb2_grpc.IngestServiceStub(self._channel(region.ingest_address))

    def ledger(self, region: RegionEntry) -> ledger_service_pb2_grpc.LedgerServiceStub:
        return ledger_service_pb2_grpc.LedgerServiceStub(self._channel(region.ledger_address))

    def rewards(self, region: RegionEntry) -> rewards_service_pb2_grpc.RewardsServiceStub:
        return rewards_service_pb2_grpc.RewardsServiceStub(self._channel(region.rewards_address))

    def gateway(self) -> gateway_service_pb2_grpc.GatewayServiceStub:
        if not self.gateway_address:
            raise Problem(503, "GATEWAY_NOT_CONFIGURED", "the registry names no gateway address")
        return gateway_service_pb2_grpc.GatewayServiceStub(self._channel(self.gateway_address))

    # --- calling ---
    def call(self, service: str, method: Callable[..., Response], request: Any, timeout_s: float = 0) -> Response:
        """One unary call with a deadline; an RpcError becomes a Problem carrying the service's reason."""
        metadata = self._gateway_metadata if service == "gateway" else ()
        try:
            return method(request, timeout=timeout_s or self.timeout_s, metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, service) from None
