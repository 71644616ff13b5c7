"""The one way a service opens a gRPC channel to another: TLS (mutual, with this process's certificate) when
configured, traced when telemetry is on, with the same reconnect and message-size options everywhere.

Channels are created on first use (never at import, never before a fork) and reused by their owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from service_kit import telemetry
from service_kit.settings import Settings

# Bound every message: a batch of several thousand events fits easily, a runaway peer does not.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# A peer that restarts is reachable again within a second; the default backoff reaches minutes.
STANDARD_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


def _credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    if not settings.tls_ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(settings.tls_ca_file).read_bytes(),
        private_key=Path(settings.tls_key_file).read_bytes() if settings.tls_key_file else None,
        certificate_chain=Path(settings.tls_cert_file).read_bytes() if settings.tls_cert_file else None,
    )


def open_channel(
    address: str, settings: Settings | None = None, options: Sequence[tuple[str, int | str]] = ()
) -> grpc.Channel:
    """A client channel to `address`. With settings naming a CA, TLS that verifies the peer against it and presents
    this process's certificate; otherwise plaintext (the embedded default on localhost). `options` add to or
    override the standard ones."""
    merged: dict[str, int | str] = dict(STANDARD_OPTIONS)
    merged.update(dict(options))
    channel_options = list(merged.items())
    credentials = _credentials(settings) if settings is not None else None
    if credentials is None:
        channel = grpc.insecure_channel(address, options=channel_options)
    else:
        channel = grpc.secure_channel(address, credentials, options=channel_options)
    return telemetry.instrument_channel(channel)
