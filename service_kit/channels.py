"""The one way a service opens a gRPC channel to another: TLS (mutual, with this process's certificate) when
configured, traced when telemetry is on, with the same reconnect and message-size options everywhere, and this
process's identity on every call: its certificate under mTLS, else its service token (service_kit/identities.py).

Channels are created on first use (never at import, never before a fork) and reused by their owner.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from service_kit import telemetry
from service_kit.identities import TOKEN_METADATA_KEY, TokenMinter, load_private_key
from service_kit.settings import Settings

# Bound every message: a batch of several thousand events fits easily, a runaway peer does not.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# gRPC's own retry policy (a service config), not a loop around calls: a call that fails UNAVAILABLE (the peer is
# restarting, or refused it before doing anything) is tried again, with backoff, within the call's own deadline.
# Every mutation between the services carries its idempotency key (transfer, hold and request ids), so a second
# attempt can never apply twice. A caller with rules of its own (the gateway's sagas) passes grpc.enable_retries=0.
RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# While most calls to a peer fail, the channel stops retrying (tokens refill with successes), so an outage does not
# triple the load on what is left.
RETRY_THROTTLING = {"maxTokens": 10, "tokenRatio": 0.1}
SERVICE_CONFIG = json.dumps(
    {"methodConfig": [{"name": [{}], "retryPolicy": RETRY_POLICY}], "retryThrottling": RETRY_THROTTLING}
)
# A peer that restarts is reachable again within a second; the default backoff reaches minutes.
STANDARD_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", SERVICE_CONFIG),
)


def _credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    if not settings.tls_ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(settings.tls_ca_file).read_bytes(),
        private_key=Path(settings.tls_key_file).read_bytes() if settings.tls_key_file else None,
        certificate_chain=Path(settings.tls_cert_file).read_bytes() if settings.tls_cert_file else None,
    )


_minters: dict[tuple[str, str], TokenMinter] = {}
_minters_lock = threading.Lock()


def minter_for(identity: str, key_file: str) -> TokenMinter:
    """One minter per identity and key in the process, shared by all its channels (one signature per few minutes)."""
    with _minters_lock:
        minter = _minters.get((identity, key_file))
        if minter is None:
            minter = TokenMinter(identity, load_private_key(key_file))
            _minters[(identity, key_file)] = minter
        return minter


class _ClientCallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, details: grpc.ClientCallDetails, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression
        self.metadata = metadata


class TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds the caller's current service token to every call's metadata."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def token_for(self, method: str) -> str:
        """The token to send with a call of `method` (this process's own, whatever the method)."""
        return self._token()

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        token = self.token_for(details.method)
        if not token:
            return details
        return _ClientCallDetails(details, (*(details.metadata or ()), (TOKEN_METADATA_KEY, token)))

    def intercept_unary_unary(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: grpc.ClientCallDetails, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: grpc.ClientCallDetails, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def _with_identity(channel: grpc.Channel, settings: Settings | None) -> grpc.Channel:
    """Under mTLS the certificate is the identity; otherwise the token, when this process has an identity and key."""
    if settings is None or settings.tls_cert_file or not settings.service_key_file or not settings.identity:
        return channel
    minter = minter_for(settings.identity, settings.service_key_file)
    return grpc.intercept_channel(channel, TokenInterceptor(minter.token))


def open_channel(
    address: str, settings: Settings | None = None, options: Sequence[tuple[str, int | str]] = ()
) -> grpc.Channel:
    """A client channel to `address`. With settings naming a CA, TLS that verifies the peer against it and presents
    this process's certificate; otherwise plaintext (the embedded default on localhost). Every call carries this
    process's identity (its certificate, else its service token). `options` add to or override the standard ones."""
    merged: dict[str, int | str] = dict(STANDARD_OPTIONS)
    merged.update(dict(options))
    channel_options = list(merged.items())
    credentials = _credentials(settings) if settings is not None else None
    if credentials is None:
        channel = grpc.insecure_channel(address, options=channel_options)
    else:
        channel = grpc.secure_channel(address, credentials, options=channel_options)
    return telemetry.instrument_channel(_with_identity(channel, settings))
