"""With telemetry on, one trace follows a request across a real gRPC hop, and log lines carry its id."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import identities, telemetry
from service_kit.logs import JsonFormatter, announce_ready, ready_address
from service_kit.server import Registration, start_server
from service_kit.settings import Settings, SettingsError
from tests.service_identities import TRUST

LEDGER = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
log = logging.getLogger("carbon.test.telemetry")


class LoggingLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    def GetBalance(
        self, request: ledger_service_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.GetBalanceResponse:
        log.info("balance asked")
        return ledger_service_pb2.GetBalanceResponse()


@pytest.fixture
def captured(
    recorded_telemetry: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """Telemetry on, recording in memory (tests/conftest.py: once per process)."""
    return recorded_telemetry


@pytest.fixture
def spans(captured: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> InMemorySpanExporter:
    captured[0].clear()  # only this test's spans
    return captured[0]


def _metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_each_rpc_is_counted_and_timed_by_method_and_status(
    captured: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    running = start_server(
        TRUST.server(Settings(service="ledger_svc")),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, LoggingLedger(), LEDGER)],  # type: ignore[abstract]
    )
    try:
        with TRUST.channel(running.address, identities.OPS_API) as channel:
            stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            stub.GetBalance(ledger_service_pb2.GetBalanceRequest(account="x"), timeout=5)
            with pytest.raises(grpc.RpcError):
                stub.VerifyJournal(ledger_service_pb2.VerifyJournalRequest(), timeout=5)
    finally:
        running.stop()
    durations = {
        (
            point.attributes["rpc.service"],
            point.attributes["rpc.method"],
            point.attributes["rpc.grpc.status_code"],
        ): point
        for point in _metric_points(captured[1], "rpc.server.duration")
    }
    assert durations[(LEDGER, "GetBalance", grpc.StatusCode.OK.value[0])].count >= 1
    assert durations[(LEDGER, "VerifyJournal", grpc.StatusCode.UNIMPLEMENTED.value[0])].count >= 1
    assert all(point.attributes["rpc.system"] == "grpc" and point.sum >= 0 for point in durations.values())


def test_the_server_span_continues_the_callers_trace_and_logs_carry_its_id(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ledger_svc", "330000"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    running = start_server(
        TRUST.server(Settings(service="ledger_svc")),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, LoggingLedger(), LEDGER)],  # type: ignore[abstract]
    )
    try:
        with (
            telemetry.tracer("test").start_as_current_span("gateway-request") as root,
            TRUST.channel(running.address, identities.OPS_API) as raw_channel,
        ):
            channel = telemetry.instrument_channel(raw_channel)
            ledger_service_pb2_grpc.LedgerServiceStub(channel).GetBalance(
                ledger_service_pb2.GetBalanceRequest(account="x"), timeout=5
            )
            trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        running.stop()
        log.removeHandler(handler)
    server_spans = [span for span in spans.get_finished_spans() if span.kind.name == "SERVER"]
    assert server_spans, "the server recorded no span"
    assert {format(span.context.trace_id, "032x") for span in server_spans} == {trace_id}
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["trace_id"] == trace_id
    assert line["msg"] == "balance asked"


def test_health_checks_and_reflection_are_not_traced(spans: InMemorySpanExporter) -> None:
    running = start_server(
        TRUST.server(Settings(service="ledger_svc")),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, LoggingLedger(), LEDGER)],  # type: ignore[abstract]
    )
    try:
        with TRUST.channel(running.address, identities.OPS_API) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=LEDGER), timeout=5)
            ledger_service_pb2_grpc.LedgerServiceStub(channel).GetBalance(
                ledger_service_pb2.GetBalanceRequest(account="x"), timeout=5
            )
    finally:
        running.stop()
    names = [span.name for span in spans.get_finished_spans()]
    assert f"/{LEDGER}/GetBalance" in names  # the client's and the server's span of the real call
    assert not [name for name in names if "grpc.health" in name]


def test_exporters_are_chosen_by_the_standard_variables() -> None:
    assert telemetry.Signals({}).processors == [] and telemetry.Signals({}).readers == []
    chosen = telemetry.Signals({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none,console"})
    assert (len(chosen.processors), len(chosen.readers)) == (1, 1)
    # Never installed: stop their export threads (a periodic reader would complain it has no provider).
    chosen.processors[0].shutdown()
    chosen.readers[0].shutdown()
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER: no traces exporter named 'jaeger'"):
        telemetry.Signals({"OTEL_TRACES_EXPORTER": "jaeger"})
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    assert telemetry.configure(Settings(service="ledger_svc"), env=disabled) is False


def test_log_lines_are_json_with_the_trace_and_no_colour_codes(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ops_api", "000000"))
    uvicorn_log = logging.getLogger("carbon.test.uvicorn-like")
    uvicorn_log.addHandler(handler)
    try:
        with telemetry.tracer("test").start_as_current_span("request") as span:
            uvicorn_log.warning("Uvicorn running on %s", "http://x", extra={"color_message": "\x1b[1m%s\x1b[0m"})
        uvicorn_log.warning("outside a trace", extra={"rows": 3})
    finally:
        uvicorn_log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["msg"] == "Uvicorn running on http://x" and "color_message" not in inside
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (inside["level"], inside["service"], inside["region"]) == ("WARNING", "ops_api", "000000")
    assert inside["ts"].endswith("+00:00")
    assert "trace_id" not in outside and outside["rows"] == 3
    assert "\x1b" not in stream.getvalue()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_ready_line_is_in_the_log_format_and_gives_the_address(log_format: str) -> None:
    out = io.StringIO()
    settings = Settings(service="ledger_svc", log_format=log_format)  # type: ignore[arg-type]
    announce_ready(settings, "ledger_svc", "330000", "127.0.0.1:50051", out=out)
    line = out.getvalue()
    if log_format == "json":
        assert json.loads(line)["msg"] == "READY"
    assert ready_address(line) == "127.0.0.1:50051"
    assert ready_address('{"msg": "serving"}') is None and ready_address("READYING") is None


def _total(reader: InMemoryMetricReader, name: str, **attributes: str) -> int:
    return sum(
        point.value
        for point in _metric_points(reader, name)
        if all(point.attributes.get(key.replace("_", ".")) == value for key, value in attributes.items())
    )


def test_the_domain_metrics_count_points_and_events(
    captured: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from ingest_svc.domain.results import ACCEPTED, REJECTED, Result
    from ingest_svc.service.metrics import IngestMetrics
    from ledger_svc.domain.transfers import ItemResult, Posting, Status
    from ledger_svc.service.metrics import LedgerMetrics

    reader = captured[1]
    before = {name: _total(reader, name) for name in ("carbon.points.issued", "carbon.points.redeemed")}
    ledger = LedgerMetrics("440000")

    def result(code: int, points: int, status: Status = Status.POSTED) -> ItemResult:
        posting = Posting(f"t{code}{points}", "a", "b", points, code, 0, "f")
        return ItemResult(posting.transfer_id, status, posting=posting)

    ledger.posted([result(1, 500), result(1, 70, Status.ALREADY_POSTED), result(2, 300), result(8, 9)])
    ledger.expired(42)
    assert _total(reader, "carbon.points.issued") - before["carbon.points.issued"] == 500
    assert _total(reader, "carbon.points.redeemed") - before["carbon.points.redeemed"] == 300
    assert _total(reader, "carbon.points.expired", carbon_region="440000") == 42
    IngestMetrics("440000").answered(
        "bike-share",
        [
            Result("e1", ACCEPTED, points=10, co2e_grams=1200),
            Result("e2", ACCEPTED, points=5, co2e_grams=300),
            Result("e3", REJECTED, reason="CONSENT_MISSING"),
        ],
    )
    assert _total(reader, "carbon.events", carbon_region="440000", carbon_outcome=ACCEPTED) == 2
    assert _total(reader, "carbon.events", carbon_region="440000", carbon_reason="CONSENT_MISSING") == 1
    assert _total(reader, "carbon.co2e", carbon_region="440000", carbon_partner="bike-share") == 1500
