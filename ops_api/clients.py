"""Clients of the services the API calls: each region's identity, ingest, ledger and rewards, and the gateway.

Channels come from service_kit.channels.open_channel, created on first use (never at import, never before a fork)
and reused. Every call carries a deadline; every failure comes back as a Problem with the service's reason code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.incentives.v1 import incentives_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2_grpc
from ops_api.problems import Problem, from_rpc_error, problem_from_domain
from service_kit.channels import open_channel
from service_kit.errors import DomainError
from service_kit.regions import RegionRegistry
from service_kit.settings import Settings
from service_kit.topology import RegionEntry

Response = TypeVar("Response")


class Channels:
    """One channel per address, shared by the API's clients."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def to(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = open_channel(address, self._settings)
                self._channels[address] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def call(
    service: str,
    method: Callable[..., Response],
    request: Any,
    timeout_s: float,
    metadata: Sequence[tuple[str, str]] = (),
) -> Response:
    """One unary call with a deadline; an RpcError becomes a Problem carrying the service's reason."""
    try:
        return method(request, timeout=timeout_s, metadata=tuple(metadata))
    except grpc.RpcError as error:
        raise from_rpc_error(error, service) from None


class RegionClients:
    """The regional services, found by region code or by an account number's home region."""

    def __init__(self, registry: RegionRegistry, channels: Channels, timeout_s: float) -> None:
        self.registry = registry
        self._channels = channels
        self.timeout_s = timeout_s

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

    def identity(self, region: RegionEntry) -> identity_service_pb2_grpc.IdentityServiceStub:
        return identity_service_pb2_grpc.IdentityServiceStub(self._channels.to(region.identity_address))

    def ingest(self, region: RegionEntry) -> ingest_service_pb2_grpc.IngestServiceStub:
        return ingest_service_pb2_grpc.IngestServiceStub(self._channels.to(region.ingest_address))

    def ledger(self, region: RegionEntry) -> ledger_service_pb2_grpc.LedgerServiceStub:
        return ledger_service_pb2_grpc.LedgerServiceStub(self._channels.to(region.ledger_address))

    def rewards(self, region: RegionEntry) -> rewards_service_pb2_grpc.RewardsServiceStub:
        return rewards_service_pb2_grpc.RewardsServiceStub(self._channels.to(region.rewards_address))

    def incentives(self, region: RegionEntry) -> incentives_service_pb2_grpc.IncentivesServiceStub:
        if not region.incentives_address:
            raise Problem(503, "INCENTIVES_NOT_CONFIGURED", f"region {region.region_code} runs no incentives service")
        return incentives_service_pb2_grpc.IncentivesServiceStub(self._channels.to(region.incentives_address))

    def call(self, service: str, method: Callable[..., Response], request: Any, timeout_s: float = 0) -> Response:
        """`service` names the answering service in problems (identity, ingest, ledger, rewards or incentives)."""
        return call(service, method, request, timeout_s or self.timeout_s)


class GatewayClient:
    """The gateway, with the API's key when the gateway authenticates callers."""

    def __init__(self, address: str, channels: Channels, timeout_s: float, api_key: str = "") -> None:
        self.address = address
        self._channels = channels
        self.timeout_s = timeout_s
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    def stub(self) -> gateway_service_pb2_grpc.GatewayServiceStub:
        if not self.address:
            raise Problem(503, "GATEWAY_NOT_CONFIGURED", "the registry names no gateway address")
        return gateway_service_pb2_grpc.GatewayServiceStub(self._channels.to(self.address))

    def call(self, method: Callable[..., Response], request: Any) -> Response:
        return call("gateway", method, request, self.timeout_s, self._metadata)
