"""The one mapping between domain errors and gRPC statuses (google.rpc.Status with exactly one ErrorInfo)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from service_kit.errors import DomainError

INTERNAL_MESSAGE = "internal error; the failure was logged with its trace id"


def error_domain(service: str) -> str:
    """The ErrorInfo domain of a service, e.g. "ledger.carbon-account"."""
    return f"{service.removesuffix('_svc')}.carbon-account"


def status_for(code: grpc.StatusCode, message: str, reason: str, domain: str, metadata: dict[str, str]) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    proto = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return rpc_status.to_status(proto)


def status_for_error(error: DomainError, domain: str) -> grpc.Status:
    return status_for(error.code, error.message, error.reason, domain, error.metadata)


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


def error_details(error: grpc.RpcError) -> ErrorDetails:
    """Extracts the status code and ErrorInfo from a client-side RpcError (reason is "" when there is none)."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    message: str = error.details() or ""  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return ErrorDetails(code, message, info.reason, info.domain, dict(info.metadata))
    return ErrorDetails(code, message, "", "", {})


assert grpc.StatusCode.INVALID_ARGUMENT.value[0] == code_pb2.INVALID_ARGUMENT
