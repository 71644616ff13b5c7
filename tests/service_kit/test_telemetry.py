"""With telemetry on, one trace follows a request across a real gRPC hop, and log lines carry its id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import identities, telemetry
from service_kit.logs import JsonFormatter
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from tests.service_identities import TRUST

LEDGER = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
log = logging.getLogger("carbon.test.telemetry")


class LoggingLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    def GetBalance(
        self, request: ledger_service_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.GetBalanceResponse:
        log.info("balance asked")
        return ledger_service_pb2.GetBalanceResponse()


@pytest.fixture(scope="module")
def captured() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    """Telemetry on, recording in memory (once per process: OpenTelemetry's global providers are set once)."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry.configure(Settings(service="ledger_svc"), span_exporter=exporter, metric_reader=reader)
    yield exporter, reader
    telemetry.disable()


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
    calls = {
        (point.attributes["rpc.method"].rsplit("/", 1)[-1], point.attributes["rpc.grpc.status"]): point.value
        for point in _metric_points(captured[1], "rpc.server.calls")
    }
    assert calls[("GetBalance", "OK")] >= 1
    assert calls[("VerifyJournal", "UNIMPLEMENTED")] >= 1
    durations = _metric_points(captured[1], "rpc.server.duration")
    assert durations and all(point.count >= 1 and point.sum >= 0 for point in durations)


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
