"""With telemetry on, one trace follows a request across a real gRPC hop, and log lines carry its id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import telemetry
from service_kit.logs import JsonFormatter
from service_kit.server import Registration, start_server
from service_kit.settings import Settings

LEDGER = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
log = logging.getLogger("carbon.test.telemetry")


class LoggingLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    def GetBalance(
        self, request: ledger_service_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.GetBalanceResponse:
        log.info("balance asked")
        return ledger_service_pb2.GetBalanceResponse()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.configure(Settings(service="ledger_svc"), span_exporter=exporter)
    yield exporter
    telemetry.disable()


def test_the_server_span_continues_the_callers_trace_and_logs_carry_its_id(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ledger_svc", "330000"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    running = start_server(
        Settings(service="ledger_svc"),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, LoggingLedger(), LEDGER)],  # type: ignore[abstract]
    )
    try:
        with (
            telemetry.tracer("test").start_as_current_span("gateway-request") as root,
            grpc.insecure_channel(running.address) as raw_channel,
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
