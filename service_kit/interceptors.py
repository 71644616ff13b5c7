"""Server interceptor that turns domain errors into statuses and never lets a traceback reach a client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from service_kit.errors import DomainError
from service_kit.status import internal_status, status_for, status_for_error
from service_kit.telemetry import RpcMetrics, current_trace_id

log = logging.getLogger("carbon.rpc")

Handler = Callable[[Any, grpc.ServicerContext], Any]


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """DomainError -> its status code with an ErrorInfo; anything else -> INTERNAL with a generic message, logged."""

    def __init__(self, domain: str, metrics: RpcMetrics | None = None) -> None:
        self._domain = domain
        self._metrics = metrics

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _fail(self, context: grpc.ServicerContext, error: Exception, method: str) -> None:
        if isinstance(error, DomainError):
            log.info("rpc refused", extra={"method": method, "reason": error.reason, "code": error.code.name})
            context.abort_with_status(status_for_error(error, self._domain))
        if isinstance(error, NotImplementedError):
            # The generated servicer base raises this for a method the service has not built yet.
            context.abort_with_status(
                status_for(
                    grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented", "UNIMPLEMENTED", self._domain, {}
                )
            )
        trace_id = current_trace_id()
        log.error("rpc crashed", exc_info=error, extra={"method": method, "trace_id": trace_id})
        context.abort_with_status(internal_status(self._domain, trace_id))

    def _wrap_unary(self, behaviour: Handler, method: str) -> Handler:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = behaviour(request, context)
            except Exception as error:
                self._record(method, started, context, error)
                # context.abort raises a plain Exception once the status is set: let it through untouched.
                if _already_aborted(context):
                    raise
                self._fail(context, error, method)
            self._record(method, started, context, None)
            return response

        return wrapped

    def _wrap_stream(self, behaviour: Handler, method: str) -> Handler:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            try:
                yield from behaviour(request, context)
            except Exception as error:
                self._record(method, started, context, error)
                if _already_aborted(context):
                    raise
                self._fail(context, error, method)
            self._record(method, started, context, None)

        return wrapped

    def _record(self, method: str, started: float, context: grpc.ServicerContext, error: Exception | None) -> None:
        if self._metrics is not None:
            self._metrics.record(method, _status_code(context, error), time.perf_counter() - started)


def _status_code(context: grpc.ServicerContext, error: Exception | None) -> grpc.StatusCode:
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, DomainError):
        return error.code
    if isinstance(error, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if _already_aborted(context):
        code = getattr(getattr(context, "_state", None), "code", None)
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.INTERNAL


def _already_aborted(context: grpc.ServicerContext) -> bool:
    state = getattr(context, "_state", None)
    return bool(state is not None and getattr(state, "aborted", False))
