"""OpenTelemetry tracing and metrics, with trace context carried over gRPC metadata.

Off by default (CARBON_TELEMETRY=none): the gRPC instrumentation costs ~110 µs per RPC here, so it is only wired
in when an exporter is chosen. With it on, a request from the gateway keeps one trace id through every service.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter

from service_kit.settings import Settings

_enabled = False


def configure(
    settings: Settings, span_exporter: SpanExporter | None = None, metric_reader: MetricReader | None = None
) -> None:
    """Installs the tracer and meter providers chosen by settings.telemetry_exporter (none, console, otlp).

    Tests pass their own span_exporter and metric_reader (in-memory ones) to see what is recorded. OpenTelemetry's
    global providers can be set once per process, so tests configure once (a module-scoped fixture).
    """
    global _enabled
    if settings.telemetry_exporter == "none" and span_exporter is None:
        return
    resource = Resource.create(
        {"service.name": settings.service, "service.namespace": "carbon-account", "carbon.region": settings.region_code}
    )
    processor: SpanProcessor
    if span_exporter is not None:
        # Tests: export each span as it ends, so assertions need no waiting.
        processor = SimpleSpanProcessor(span_exporter)
        metric_reader = metric_reader or PeriodicExportingMetricReader(
            ConsoleMetricExporter(), export_interval_millis=3_600_000
        )
    elif settings.telemetry_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint or None
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
        metric_reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint))
    else:
        processor = BatchSpanProcessor(ConsoleSpanExporter())
        metric_reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[metric_reader]))
    _enabled = True


def enabled() -> bool:
    return _enabled


def disable() -> None:
    """Stops wiring instrumentation into new servers and channels (tests that turned it on turn it off)."""
    global _enabled
    _enabled = False


def server_interceptors() -> list[Any]:
    """The OpenTelemetry server interceptor (extracts trace context from metadata), when telemetry is on."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import server_interceptor

    return [server_interceptor()]  # type: ignore[no-untyped-call]


def instrument_channel(channel: grpc.Channel) -> grpc.Channel:
    """Wraps a client channel so outgoing calls carry the current trace context, when telemetry is on."""
    if not _enabled:
        return channel
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    # The instrumentation's own intercept_channel: its interceptor is not a grpc.*ClientInterceptor subclass.
    return intercept_channel(channel, client_interceptor())  # type: ignore[no-any-return,no-untyped-call]


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, or "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def tracer(name: str) -> Any:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


class RpcMetrics:
    """rpc.server.calls (count) and rpc.server.duration (seconds), by method and status code."""

    def __init__(self, service: str) -> None:
        meter_ = metrics.get_meter("carbon.rpc")
        self._service = service
        self._calls = meter_.create_counter("rpc.server.calls", unit="{call}", description="RPCs handled")
        self._duration = meter_.create_histogram("rpc.server.duration", unit="s", description="time to handle an RPC")

    def record(self, method: str, status: str, seconds: float) -> None:
        attributes = {"rpc.method": method, "rpc.grpc.status": status, "service": self._service}
        self._calls.add(1, attributes)
        self._duration.record(seconds, attributes)


def rpc_metrics(service: str) -> RpcMetrics | None:
    """Per-RPC metrics when telemetry is on; None (no cost on the hot path) when it is off."""
    return RpcMetrics(service) if _enabled else None
