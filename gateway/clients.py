"""Clients of the regions: channels and stubs to each region's services, and the classification of what comes back.

One channel per address (service_kit.channels.open_channel), created on first use (never at import, never before a
fork) and reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2_grpc
from service_kit.access import CALLER_METADATA_KEY, CALLER_PLATFORM_METADATA_KEY
from service_kit.channels import open_channel
from service_kit.errors import Unavailable
from service_kit.regions import RegionRegistry
from service_kit.settings import Settings
from service_kit.status import error_details

# Codes after which the outcome of a mutation is not known: retry with the same idempotency key.
RETRY_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
# The gateway retries by its own rules (same idempotency key, bounded by the transfer's deadline).
CHANNEL_OPTIONS = [("grpc.enable_retries", 0)]

Response = TypeVar("Response")
# Threads that ask regions questions in parallel for the request threads (call_later); a request asks a few at once.
_QUESTIONS = ThreadPoolExecutor(32, thread_name_prefix="region-question")


@dataclass
class RemoteError(Exception):
    """A region answered with an error (final) or did not answer in time (retry: the outcome is unknown)."""

    region_code: str
    code: grpc.StatusCode
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.code not in RETRY_CODES

    def __str__(self) -> str:
        return f"region {self.region_code}: {self.code.name} {self.reason} {self.message}"

    def as_unavailable(self) -> Unavailable:
        return Unavailable(
            "REGION_UNAVAILABLE", f"region {self.region_code} did not answer", {"region": self.region_code}
        )


class RegionClients:
    def __init__(self, registry: RegionRegistry, settings: Settings | None = None) -> None:
        self.registry = registry
        self._settings = settings
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _channel(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = open_channel(address, self._settings, CHANNEL_OPTIONS)
                self._channels[address] = channel
            return channel

    def channel(self, region_code: str, service: str) -> grpc.Channel:
        """The channel to one of a region's services by kind: identity, ingest, ledger, rewards or incentives."""
        return self._channel(getattr(self.registry.region(region_code), f"{service}_address"))

    def ledger(self, region_code: str) -> ledger_service_pb2_grpc.LedgerServiceStub:
        return ledger_service_pb2_grpc.LedgerServiceStub(
            self._channel(self.registry.region(region_code).ledger_address)
        )

    def identity(self, region_code: str) -> identity_service_pb2_grpc.IdentityServiceStub:
        address = self.registry.region(region_code).identity_address
        return identity_service_pb2_grpc.IdentityServiceStub(self._channel(address))

    def rewards(self, region_code: str) -> rewards_service_pb2_grpc.RewardsServiceStub:
        address = self.registry.region(region_code).rewards_address
        return rewards_service_pb2_grpc.RewardsServiceStub(self._channel(address))

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def call(
    region_code: str,
    method: Callable[..., Response],
    request: Any,
    timeout_s: float,
    metadata: Sequence[tuple[str, str]] = (),
) -> Response:
    """One unary call with a deadline; every failure becomes a RemoteError carrying the region and reason.
    `metadata` adds to what the channel sends (this process's identity), e.g. the external caller it acts for."""
    if timeout_s <= 0:
        raise _no_time_left(region_code)
    try:
        if metadata:
            return method(request, timeout=timeout_s, metadata=tuple(metadata))
        return method(request, timeout=timeout_s)
    except grpc.RpcError as error:
        raise _remote_error(region_code, error) from None


def call_later(region_code: str, method: Any, request: Any, timeout_s: float) -> Callable[[], Any]:
    """Starts one unary call now and returns the wait for its answer, which answers or raises exactly as `call`
    would: several regions' questions are then asked at once instead of one after the other. The call runs as a
    blocking one on a shared pool (a gRPC future of the sync API costs several times a blocking call's CPU)."""
    future = _QUESTIONS.submit(call, region_code, method, request, timeout_s)
    return future.result


def _no_time_left(region_code: str) -> RemoteError:
    return RemoteError(region_code, grpc.StatusCode.DEADLINE_EXCEEDED, "NO_TIME_LEFT", "no time left for the call")


def _remote_error(region_code: str, error: grpc.RpcError) -> RemoteError:
    details = error_details(error)
    return RemoteError(region_code, details.code, details.reason, details.message, dict(details.metadata))


def acting_for(caller_id: str, platform: str = "") -> tuple[tuple[str, str], ...]:
    """The metadata naming the external caller a forwarded call is made for (service_kit.access reads it from the
    gateway only): x-carbon-caller and, for a channel platform, x-carbon-caller-platform."""
    names = [(CALLER_METADATA_KEY, caller_id)]
    if platform:
        names.append((CALLER_PLATFORM_METADATA_KEY, platform))
    return tuple(names)


def deadline_s(time_remaining_s: float | None, cap_s: float, margin_s: float = 0.05) -> float:
    """The caller's deadline propagates: a downstream call ends `margin_s` before the caller stops waiting."""
    return cap_s if time_remaining_s is None else max(min(cap_s, time_remaining_s - margin_s), 0.0)
