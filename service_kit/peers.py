"""A client of another service at one address: its stub on a channel opened at first use, never at import or before a
fork (grpc's fork support is off: a channel made before fork() breaks in the child). Each service's clients.py
subclasses it once per peer and adds the calls it makes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from service_kit.channels import open_channel
from service_kit.errors import Unavailable
from service_kit.settings import Settings

Stub = TypeVar("Stub")


class Peer(Generic[Stub]):
    """One peer at one address; `failed` turns an RPC error into UNAVAILABLE <SERVICE>_UNAVAILABLE (retry)."""

    def __init__(
        self,
        service: str,
        make_stub: Callable[[grpc.Channel], Stub],
        address: str,
        deadline_s: float,
        settings: Settings | None,
    ) -> None:
        self._service = service
        self._make_stub = make_stub
        self._address = address
        self.deadline_s = deadline_s
        self._settings = settings
        self._channel: grpc.Channel | None = None
        self._stub: Stub | None = None
        self._lock = threading.Lock()

    def stub(self) -> Stub:
        if not self._address:
            raise Unavailable("DEPENDENCY_NOT_CONFIGURED", f"no address for the {self._service} service is configured")
        with self._lock:
            if self._stub is None:
                self._channel = open_channel(self._address, self._settings)
                self._stub = self._make_stub(self._channel)
            return self._stub

    def failed(self, error: grpc.RpcError) -> Unavailable:
        return Unavailable(f"{self._service.upper()}_UNAVAILABLE", f"{self._service} service: {error.code().name}")

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None
