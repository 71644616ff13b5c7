"""Domain errors: raised in the rules, mapped once to a gRPC status with a google.rpc.ErrorInfo at the edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import grpc


class DomainError(Exception):
    """An expected failure with a machine-readable reason (UPPER_SNAKE_CASE) and the values that vary."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
    # Sent as google.rpc.RetryInfo when set (UNAVAILABLE and RESOURCE_EXHAUSTED get a default one at the edge).
    retry_delay: timedelta | None = None
    # Sent as google.rpc.BadRequest field violations: (field path, what is wrong with it).
    violations: Sequence[tuple[str, str]] = ()

    def __init__(self, reason: str, message: str, metadata: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = {key: str(value) for key, value in (metadata or {}).items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.message!r})"


class InvalidArgument(DomainError):
    """Bad input: names the field that is wrong."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self, field: str, message: str, reason: str = "INVALID_ARGUMENT", metadata: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(reason, f"{field}: {message}", {"field": field, **(metadata or {})})
        self.field = field


class BadRequest(InvalidArgument):
    """Several bad fields at once: the first names the error, the BadRequest detail lists them all."""

    def __init__(self, violations: Sequence[tuple[str, str]], reason: str = "INVALID_ARGUMENT") -> None:
        field, message = violations[0]
        super().__init__(field, message, reason, {"violations": len(violations)})
        self.violations = list(violations)


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Retryable(DomainError):
    """An error the caller may retry: `retry_delay` becomes the answer's RetryInfo (how long to back off)."""

    def __init__(
        self,
        reason: str,
        message: str,
        metadata: Mapping[str, object] | None = None,
        retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(reason, message, metadata)
        self.retry_delay = retry_delay


class Unavailable(Retryable):
    """A dependency is down; the caller may retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(Retryable):
    """Rate limit or quota: retry after backing off."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


def require(condition: bool, field: str, message: str) -> None:
    """Raises InvalidArgument for `field` unless `condition` holds."""
    if not condition:
        raise InvalidArgument(field, message)
