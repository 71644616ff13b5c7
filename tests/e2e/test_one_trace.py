"""One call through the gateway into the regions is ONE trace across the processes.

The embedded system (the gateway and two regions, real processes) exports over OTLP, configured only by the
standard OTEL_* variables, to a receiver this test serves. The directory lookup is the call: the gateway asks the
account's home identity, then fans out to every region's identity and ledger from a thread pool, so the trace
only holds together if the context crosses that pool.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from service_kit import embedded_trust, identities
from service_kit.channels import open_channel
from service_kit.embedded import Supervisor
from service_kit.embedded_front_door import OPS_API, key_file
from service_kit.settings import Settings
from service_kit.topology import Registry, plan
from tests.ports import UPWARDS, free_base_port

pytestmark = pytest.mark.e2e

REGIONS = ["330000", "110000"]
CLIENT, SERVER = trace_pb2.Span.SPAN_KIND_CLIENT, trace_pb2.Span.SPAN_KIND_SERVER
# A deadline against a hang, not a measurement (bench/ measures).
EXPORT_DEADLINE_S = 60


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    region: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            attributes = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                received += [
                    ReceivedSpan(
                        attributes.get("service.name", ""),
                        attributes.get("carbon.region", ""),
                        span.name,
                        span.kind,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                    )
                    for span in scope_spans.spans
                ]
        with self._lock:
            self.spans += received
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


@pytest.fixture
def system(
    tmp_path: Path, receiver: tuple[Receiver, int], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Registry, Supervisor]]:
    for variable in [name for name in os.environ if name.startswith(("CARBON_", "OTEL_"))]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver[1]}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # export within a fraction of a second, not five
    registry = plan(REGIONS, base_port=free_base_port(UPWARDS))
    supervisor = Supervisor(registry, tmp_path / "data")
    try:
        supervisor.start()
        supervisor.wait_until_serving(timeout_s=180)
        yield registry, supervisor
    finally:
        supervisor.stop()


def _operator(data_dir: Path) -> Settings:
    """The identity the system's own tools present (the ops API's), as `carbon up` prepared it."""
    trust = embedded_trust.load(data_dir)
    assert trust is not None
    return trust.settings(identities.OPS_API)


def _gateway_key(data_dir: Path) -> str:
    """The API key `carbon up` gave the ops API at the gateway's front door (an operator acting nationally)."""
    return key_file(data_dir, OPS_API).read_text().strip()


def _open_account(registry: Registry, operator: Settings) -> str:
    zhejiang = next(region for region in registry.regions if region.region_code == "330000")
    with open_channel(zhejiang.identity_address, operator) as channel:
        opened = identity_service_pb2_grpc.IdentityServiceStub(channel).OpenAccount(
            identity_service_pb2.OpenAccountRequest(
                request_id="trace-open",
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                name="张三",
                id_number="11010519491231002X",
                phone_number="13812345678",
                binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="2088-trace"),
            ),
            timeout=30,
        )
        # The directory shares the account with the other regions only with the person's consent (ADR 0610).
        identity_service_pb2_grpc.IdentityServiceStub(channel).GrantConsent(
            identity_service_pb2.GrantConsentRequest(
                request_id="trace-sharing",
                account_number=opened.account.account_number,
                category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING,
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                recorded_by="alipay",
            ),
            timeout=30,
        )
    return str(opened.account.account_number)


def _trace_of(receiver: Receiver, trace_id: str, expected: set[tuple[str, str]]) -> list[ReceivedSpan]:
    """The trace's spans once every expected (service, region) has exported its part."""
    deadline = time.monotonic() + EXPORT_DEADLINE_S
    while True:
        spans = [span for span in receiver.snapshot() if span.trace_id == trace_id]
        if expected <= {(span.service, span.region) for span in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


@pytest.mark.timeout(400)
def test_a_directory_lookup_through_the_gateway_is_one_trace_across_the_processes(
    system: tuple[Registry, Supervisor], receiver: tuple[Receiver, int]
) -> None:
    registry, supervisor = system
    operator = _operator(supervisor.data_dir)
    account = _open_account(registry, operator)
    with open_channel(registry.gateway_address, operator) as channel:
        entry = gateway_service_pb2_grpc.GatewayServiceStub(channel).GetDirectoryEntry(
            gateway_service_pb2.GetDirectoryEntryRequest(account_number=account),
            metadata=(("authorization", f"Bearer {_gateway_key(supervisor.data_dir)}"),),
            timeout=30,
        )
    assert [a.account_number for a in entry.accounts if a.account_number] == [account]

    method = "/carbon.gateway.v1.GatewayService/GetDirectoryEntry"
    deadline = time.monotonic() + EXPORT_DEADLINE_S
    roots: list[ReceivedSpan] = []
    while not roots and time.monotonic() < deadline:
        roots = [span for span in receiver[0].snapshot() if span.name == method and span.service == "gateway"]
        time.sleep(0.2)
    assert len(roots) == 1, "the gateway exported no span (or several) for the call"
    root = roots[0]
    assert root.parent_span_id == "", "the gateway's server span starts the trace"

    # Identity in both regions (asked for the person's accounts), the ledger where the account is (its balance).
    expected = {("gateway", "000000"), ("ledger_svc", "330000")} | {("identity_svc", region) for region in REGIONS}
    spans = _trace_of(receiver[0], root.trace_id, expected)
    assert expected <= {(span.service, span.region) for span in spans}
    # One tree: every span but the root hangs under another span of the same trace.
    ids = {span.span_id for span in spans}
    assert [span for span in spans if span.parent_span_id not in ids] == [root]
    # The regions' server spans are children of the gateway's client spans (the context crossed the thread pool).
    gateway_clients = {span.span_id for span in spans if span.service == "gateway" and span.kind == CLIENT}
    region_servers = [span for span in spans if span.service != "gateway" and span.kind == SERVER]
    assert region_servers and all(span.parent_span_id in gateway_clients for span in region_servers)
    # The regions' database statements are spans of the trace too (SQLAlchemy instrumented).
    assert [span for span in spans if span.service == "ledger_svc" and span.kind == CLIENT and "SELECT" in span.name]
    # Health probes (the supervisor's, every 100 ms while starting) are never traced.
    assert not [span for span in receiver[0].snapshot() if "grpc.health" in span.name]
