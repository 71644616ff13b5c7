"""The one mapping between domain errors and gRPC statuses: a google.rpc.Status with exactly one ErrorInfo, plus
RetryInfo when the caller should come back later and BadRequest listing every bad field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from service_kit.errors import DomainError, InvalidArgument

INTERNAL_MESSAGE = "internal error; the failure was logged with its trace id"


def error_domain(service: str) -> str:
    """The ErrorInfo domain of a service, e.g. "ledger.carbon-account"."""
    return f"{service.removesuffix('_svc')}.carbon-account"


# The retry advice sent with RESOURCE_EXHAUSTED when the error names none: a token bucket refills within a second.
DEFAULT_BACKOFF = timedelta(seconds=1)


def status_for(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    domain: str,
    metadata: dict[str, str],
    *,
    retry_delay: timedelta | None = None,
    violations: Sequence[tuple[str, str]] = (),
) -> grpc.Status:
    """A Status with its ErrorInfo first, then RetryInfo (when a delay is given) and BadRequest (when violations,
    (field path, description) pairs, are given)."""
    details = [_packed(error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata))]
    if retry_delay is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromTimedelta(retry_delay)
        details.append(_packed(info))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=text) for field, text in violations
            ]
        )
        details.append(_packed(bad))
    proto = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(proto)


def _packed(message: Message) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def status_for_error(error: DomainError, domain: str) -> grpc.Status:
    """A refusal's status; RESOURCE_EXHAUSTED and UNAVAILABLE carry RetryInfo, INVALID_ARGUMENT a BadRequest."""
    retry = error.retry_delay
    if retry is None and error.code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        retry = DEFAULT_BACKOFF
    violations = error.violations
    if not violations and isinstance(error, InvalidArgument):
        violations = [(error.field, error.message.removeprefix(f"{error.field}: "))]
    return status_for(
        error.code, error.message, error.reason, domain, error.metadata, retry_delay=retry, violations=violations
    )


def internal_status(domain: str, trace_id: str) -> grpc.Status:
    return status_for(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, "INTERNAL", domain, {"trace_id": trace_id})


@dataclass(frozen=True)
class ErrorDetails:
    """What a client reads back from a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    retry_delay: timedelta | None = None
    violations: tuple[tuple[str, str], ...] = ()


def error_details(error: grpc.RpcError) -> ErrorDetails:
    """Extracts the status code, ErrorInfo, RetryInfo and BadRequest from a client-side RpcError (reason is "" when
    there is no ErrorInfo)."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    message: str = error.details() or ""  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    retry: timedelta | None = None
    violations: tuple[tuple[str, str], ...] = ()
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
            retry = retry_info.retry_delay.ToTimedelta()
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = tuple((v.field, v.description) for v in bad.field_violations)
    return ErrorDetails(code, message, info.reason, info.domain, dict(info.metadata), retry, violations)


assert grpc.StatusCode.INVALID_ARGUMENT.value[0] == code_pb2.INVALID_ARGUMENT
