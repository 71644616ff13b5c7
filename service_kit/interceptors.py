"""Server interceptor at the edge of every method: decodes and checks the request (bad bytes or bad values are
INVALID_ARGUMENT, before any service code runs), retries idempotent calls over a conflict or a lost connection,
turns domain errors and infrastructure failures into statuses, and never lets a traceback reach a client."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from service_kit import failures, validation
from service_kit.errors import BadRequest, DomainError, InvalidArgument
from service_kit.status import internal_status, status_for, status_for_error
from service_kit.telemetry import RpcMetrics, current_trace_id

log = logging.getLogger("carbon.rpc")

Handler = Callable[[Any, grpc.ServicerContext], Any]


Decoder = Callable[[bytes], Any]


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """DomainError -> its status code with an ErrorInfo; an infrastructure failure -> UNAVAILABLE with RetryInfo
    (failures.py); anything else -> INTERNAL with a generic message, logged.

    The handler it returns takes the request as bytes: grpcio answers a request it cannot decode with INTERNAL before
    any interceptor sees it, so the decoding happens here instead.
    """

    def __init__(self, domain: str, metrics: RpcMetrics | None = None) -> None:
        self._domain = domain
        self._metrics = metrics

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        decode = _decoder(handler.request_deserializer)
        serializer = handler.response_serializer
        if handler.unary_unary:
            behaviour = _unary_request(handler.unary_unary, decode)
            if failures.is_idempotent(handler.unary_unary):
                behaviour = _retried(behaviour, method)
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(behaviour, method), response_serializer=serializer
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(_stream_request(handler.stream_unary, decode), method), response_serializer=serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(_unary_request(handler.unary_stream, decode), method), response_serializer=serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(_stream_request(handler.stream_stream, decode), method), response_serializer=serializer
        )

    def _fail(self, context: grpc.ServicerContext, error: Exception, method: str) -> None:
        if isinstance(error, DomainError):
            log.info("rpc refused", extra={"method": method, "reason": error.reason, "code": error.code.name})
            context.abort_with_status(status_for_error(error, self._domain))
        failure = failures.classify(error)
        if failure is not None:
            log.warning(
                "rpc failed on infrastructure", extra={"method": method, "reason": failure.reason, "error": repr(error)}
            )
            status = status_for(
                failure.code, failure.message, failure.reason, self._domain, {}, retry_delay=failure.retry_delay
            )
            context.abort_with_status(status)
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


def _decoder(deserializer: Decoder | None) -> Decoder:
    """Bytes -> the request message, checked (validation.py); INVALID_ARGUMENT when it cannot be decoded."""

    def decode(raw: bytes) -> Any:
        if deserializer is None:
            return raw
        try:
            request = deserializer(raw)
        except (DecodeError, ValueError, TypeError, RuntimeError) as error:
            raise InvalidArgument(
                "request", "is not a valid encoding of the request message", "MALFORMED_REQUEST"
            ) from error
        found = validation.violations(request)
        if found:
            raise BadRequest(found)
        return request

    return decode


def _unary_request(behaviour: Handler, decode: Decoder) -> Handler:
    def decoded(raw: bytes, context: grpc.ServicerContext) -> Any:
        return behaviour(decode(raw), context)

    return decoded


def _stream_request(behaviour: Handler, decode: Decoder) -> Handler:
    def decoded(raw_iterator: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        return behaviour((decode(raw) for raw in raw_iterator), context)

    return decoded


def _retried(behaviour: Handler, method: str) -> Handler:
    """Runs an idempotent call again, whole, after a transient infrastructure failure, while its deadline allows."""

    def retrying(request: Any, context: grpc.ServicerContext) -> Any:
        for attempt in range(1, failures.IDEMPOTENT_ATTEMPTS + 1):
            try:
                return behaviour(request, context)
            except Exception as error:
                failure = failures.classify(error)
                if failure is None or not failure.transient or attempt == failures.IDEMPOTENT_ATTEMPTS:
                    raise
                # Jitter, so the calls that collided do not collide again.
                pause = random.uniform(0.5, 1.5) * failures.CONFLICT_RETRY_DELAY.total_seconds() * attempt
                remaining = context.time_remaining()
                if _already_aborted(context) or (remaining is not None and remaining < pause * 2):
                    raise
                log.info("retrying an idempotent call", extra={"method": method, "reason": failure.reason})
                time.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    return retrying


def _status_code(context: grpc.ServicerContext, error: Exception | None) -> grpc.StatusCode:
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, DomainError):
        return error.code
    failure = failures.classify(error)
    if failure is not None:
        return failure.code
    if isinstance(error, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if _already_aborted(context):
        code = getattr(getattr(context, "_state", None), "code", None)
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.INTERNAL


def _already_aborted(context: grpc.ServicerContext) -> bool:
    state = getattr(context, "_state", None)
    return bool(state is not None and getattr(state, "aborted", False))
