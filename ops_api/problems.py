"""Problems: the ops API's errors (RFC 9457 problem details), and the one mapping onto them from gRPC statuses and
the kit's domain errors.

Every layer of the API raises Problem; app.py renders it as application/problem+json. A problem carries the same
machine-readable reason as the gRPC ErrorInfo it came from, so a client of the HTTP API and a client of the gRPC API
branch on the same codes. See docs/adr/0800-ops-http-api.md for the choices (FAILED_PRECONDITION is 409; our own
request-schema errors are 422, a service's INVALID_ARGUMENT is 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from service_kit.errors import DomainError
from service_kit.status import error_details

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    # A business refusal on the current state (INSUFFICIENT_POINTS, ACCOUNT_CLOSED, OUT_OF_STOCK): a conflict with
    # the resource's state, retrying the same request will not help.
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.CANCELLED: 503,
}
TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Unprocessable request",
    429: "Too many requests",
    501: "Not implemented",
    502: "Upstream error",
    503: "Service unavailable",
    504: "Upstream timeout",
}


class Problem(Exception):
    """An expected failure, rendered as application/problem+json."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        metadata: Mapping[str, object] | None = None,
        domain: str = "ops.carbon-account",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.metadata = {key: str(value) for key, value in (metadata or {}).items()}
        self.domain = domain
        self.headers = dict(headers or {})

    def body(self, instance: str, request_id: str) -> dict[str, Any]:
        return {
            "type": f"urn:carbon-account:problem:{self.reason.lower()}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "reason": self.reason,
            "domain": self.domain,
            "metadata": self.metadata,
            "request_id": request_id,
        }


def from_rpc_error(error: grpc.RpcError, service: str) -> Problem:
    """What a regional service or the gateway answered, as a problem with its reason kept."""
    details = error_details(error)
    status = HTTP_STATUS.get(details.code, 502)
    reason = details.reason or details.code.name
    if status == 502:
        # INTERNAL or UNKNOWN upstream: its message may say too much; keep the reason, not the text.
        return Problem(502, reason, f"{service} failed", details.metadata, details.domain or service)
    return Problem(status, reason, details.message or details.code.name, details.metadata, details.domain or service)


def invalid(field: str, message: str, status: int = 400) -> Problem:
    return Problem(status, "INVALID_ARGUMENT", f"{field}: {message}", {"field": field})


def problem_from_domain(error: DomainError) -> Problem:
    """A refusal of the kit (a bad account number, a region not federated) as a problem, mapped like gRPC errors."""
    return Problem(HTTP_STATUS.get(error.code, 500), error.reason, error.message, error.metadata)
