"""The service kit: what every carbon service shares (settings, errors, database, telemetry, gRPC server)."""

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
