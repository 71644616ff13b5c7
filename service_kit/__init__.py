"""The service kit: what every carbon service shares (settings, errors, database, telemetry, gRPC server)."""

import os

# Set before anything imports grpc: our processes start others only by fork-and-exec (carbon up, the tests), never
# use gRPC across a fork, and grpcio's fork handlers can restart its poller in the forked child, which then dies on
# the descriptor Popen closes before exec (grpc/grpc#43055: the child exits with SIGABRT before it runs).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from service_kit.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from service_kit.settings import Secret, ServiceSettings, Settings, SettingsError

__all__ = [
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Secret",
    "ServiceSettings",
    "Settings",
    "SettingsError",
    "Unauthenticated",
    "Unavailable",
]
