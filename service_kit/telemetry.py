"""OpenTelemetry for every process, configured by the standard OTEL_* variables (docs/adr/0012-observability.md).

`OTEL_TRACES_EXPORTER` and `OTEL_METRICS_EXPORTER` name exporters the way the SDK's own environment configuration
does (entry points: otlp, console, prometheus); `OTEL_SDK_DISABLED=true` turns everything off. Unlike the SDK's
default (otlp), an unset exporter here means none: the embedded system and the tests run without a collector, and an
exporter that cannot connect would only log errors. The SDK's classes read the rest themselves: OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_*, OTEL_EXPORTER_PROMETHEUS_HOST/PORT,
OTEL_METRIC_EXPORT_INTERVAL, OTEL_BSP_*.

With either signal on, the standard instrumentations are wired in: gRPC (servers and channels, health checks
excluded), SQLAlchemy (queries and pool usage), Redis, and thread pools (a span started before `submit` stays the
parent of what the task does). With both off nothing is instrumented: each instrumentation costs on every call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import metrics, trace

from service_kit.settings import Settings, SettingsError

# The SDK is imported only once a signal is asked for: every process imports this module, and with telemetry off
# (the embedded system, the tests) the SDK's import was a sizeable part of a start's CPU (docs/adr/0027).
if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
# Health probes and reflection are called many times a minute; as spans they would outnumber the requests.
UNTRACED_GRPC_PREFIX = "grpc."

_enabled = False


class Signals:
    """What the environment asks for: span processors and metric readers, each built from its entry point."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.processors: list[SpanProcessor] = [
            _batched(_load("traces", name, env)()) for name in _names(env, TRACES_EXPORTER)
        ]
        self.readers: list[MetricReader] = [
            _reader(_load("metrics", name, env)) for name in _names(env, METRICS_EXPORTER)
        ]


def _names(env: Mapping[str, str], variable: str) -> list[str]:
    names = [name.strip().lower() for name in env.get(variable, "none").split(",") if name.strip()]
    return [name for name in names if name != "none"]


def _load(signal: str, name: str, env: Mapping[str, str]) -> Any:
    """The exporter class registered under `name` (as the SDK resolves it: otlp means OTLP over the protocol that
    OTEL_EXPORTER_OTLP_PROTOCOL names, gRPC by default)."""
    if name == "otlp":
        protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        name = "otlp_proto_http" if (protocol or "grpc") == "http/protobuf" else "otlp_proto_grpc"
    found = entry_points(group=f"opentelemetry_{signal}_exporter", name=name)
    if not found:
        variable = TRACES_EXPORTER if signal == "traces" else METRICS_EXPORTER
        raise SettingsError(f"{variable}: no {signal} exporter named {name!r} is installed")
    return next(iter(found)).load()


def _batched(exporter: SpanExporter) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


def _reader(exporter_class: type) -> MetricReader:
    """A pull exporter (Prometheus) is a reader itself; a push exporter is read every OTEL_METRIC_EXPORT_INTERVAL."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader

    if issubclass(exporter_class, MetricReader):
        return exporter_class()
    exporter: MetricExporter = exporter_class()  # type: ignore[assignment]
    return PeriodicExportingMetricReader(exporter)


def _resource(settings: Settings, env: Mapping[str, str]) -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    attributes: dict[str, str] = {"service.namespace": "carbon-account", "carbon.region": settings.region_code}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = settings.service
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME from the environment.
    return Resource.create(attributes)


def configure(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> bool:
    """Installs the tracer and meter providers and the instrumentations the OTEL_* variables ask for; True if any.

    Tests pass their own span_exporter and metric_reader (in-memory ones) to see what is recorded. OpenTelemetry's
    global providers can be set once per process, so tests configure once (a module-scoped fixture).
    Raises SettingsError naming the variable when an exporter is not installed.
    """
    global _enabled
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    signals = Signals(env)
    if span_exporter is not None:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        # Tests: export each span as it ends, so assertions need no waiting.
        signals.processors.append(SimpleSpanProcessor(span_exporter))
    if metric_reader is not None:
        signals.readers.append(metric_reader)
    if not signals.processors and not signals.readers:
        return False
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    resource = _resource(settings, env)
    tracer_provider = TracerProvider(resource=resource)
    for processor in signals.processors:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=signals.readers))
    _instrument_libraries()
    _enabled = True
    return True


def _instrument_libraries() -> None:
    """The standard instrumentations that patch a library once per process (gRPC is wired per server and channel)."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    for instrumentor in (ThreadingInstrumentor(), RedisInstrumentor(), SQLAlchemyInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            # SQLAlchemy: every engine created from now on (engines are made after telemetry in every main()). Its
            # instrumentation declares SQLAlchemy below 2.1 and would refuse 2.1; the engine and pool events it
            # listens to are the same in 2.1, which the end-to-end trace test checks (tests/e2e/test_one_trace.py).
            instrumentor.instrument(skip_dep_check=True)


def enabled() -> bool:
    return _enabled


def disable() -> None:
    """Stops wiring instrumentation into new servers and channels (tests that turned it on turn it off)."""
    global _enabled
    _enabled = False


def resume() -> None:
    """Wires instrumentation in again after disable(), with the providers configure() installed: OpenTelemetry's
    global providers are set once per process, so tests that record telemetry configure once and then resume and
    disable around each test, leaving every other test untraced."""
    global _enabled
    _enabled = True


def _grpc_filter() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    return filters.negate(filters.any_of(filters.health_check(), filters.service_prefix(UNTRACED_GRPC_PREFIX)))


def server_interceptors() -> list[Any]:
    """The OpenTelemetry server interceptor (extracts trace context from metadata), when telemetry is on."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import server_interceptor

    return [server_interceptor(filter_=_grpc_filter())]  # type: ignore[no-untyped-call]


def instrument_channel(channel: grpc.Channel) -> grpc.Channel:
    """Wraps a client channel so outgoing calls carry the current trace context, when telemetry is on."""
    if not _enabled:
        return channel
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    # The instrumentation's own intercept_channel: its interceptor is not a grpc.*ClientInterceptor subclass.
    interceptor = client_interceptor(filter_=_grpc_filter())  # type: ignore[no-untyped-call]
    return intercept_channel(channel, interceptor)  # type: ignore[no-any-return,no-untyped-call]


def instrument_http_app(app: Any, excluded_paths: str) -> None:
    """Traces and measures a FastAPI app's requests (http.server.* metrics), except the comma-separated paths."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=excluded_paths)


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, or "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def current_span_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.span_id, "016x") if context.is_valid else ""


def tracer(name: str) -> Any:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    """A meter for a service's own instruments; no-op until configure() installs a provider, so instruments can be
    created at any time and cost next to nothing while telemetry is off."""
    return metrics.get_meter(name)


class RpcMetrics:
    """The semantic-convention RPC server metric: rpc.server.duration (milliseconds; its count is the number of
    calls), by rpc.system, rpc.service, rpc.method and rpc.grpc.status_code."""

    def __init__(self) -> None:
        self._duration = metrics.get_meter("carbon.rpc").create_histogram(
            "rpc.server.duration", unit="ms", description="Measures the duration of inbound RPC."
        )

    def record(self, full_method: str, status: grpc.StatusCode, seconds: float) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
            "rpc.grpc.status_code": status.value[0],
        }
        self._duration.record(seconds * 1000.0, attributes)


def rpc_metrics() -> RpcMetrics | None:
    """Per-RPC metrics when telemetry is on; None (no cost on the hot path) when it is off."""
    return RpcMetrics() if _enabled else None
