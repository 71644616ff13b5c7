"""Transport security: TLS on servers, mutual TLS between platforms, and who the authenticated peer is.

The calling region or platform is identified by its certificate (mTLS), never by a field in the request.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from service_kit.settings import Settings


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials for the server, or None for plaintext (the embedded default on localhost)."""
    if not settings.tls_cert_file:
        return None
    root = _read(settings.tls_ca_file) if settings.tls_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
        root_certificates=root,
        require_client_auth=root is not None,
    )


def peer_common_name(context: grpc.ServicerContext) -> str:
    """The common name of the client certificate verified for this call, or "" without mTLS."""
    names: object = context.auth_context().get("x509_common_name")
    first = names[0] if isinstance(names, list) and names else b""
    return first.decode() if isinstance(first, bytes) else ""
