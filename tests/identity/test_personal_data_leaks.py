"""No full ID number or phone number reaches a log line or a trace (issue 17): a real identity server with telemetry on,
taken through opening (an adult and a minor with a guardian), consent, a refused and an accepted correction and a
phone lookup; every log line and every span (name, attributes, events) is searched for the raw values."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from identity_svc.server import SERVICE_NAME, IdentityServiceServicer, build_services
from service_kit import identities, telemetry
from service_kit.db import make_engine, migrate
from service_kit.logs import JsonFormatter
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from tests.identity.identity_helpers import SAMPLE_ID, make_keys, with_check_digit
from tests.service_identities import TRUST

CHILD_ID = with_check_digit("33010620150601123")
SECRETS = (SAMPLE_ID, CHILD_ID, "13812345678", "13912345678", "13700000001")


@pytest.fixture
def spans(recorded_telemetry: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> InMemorySpanExporter:
    recorded_telemetry[0].clear()  # only this test's spans
    return recorded_telemetry[0]


def at_counter(request_id: str, name: str, id_number: str, phone: str, guardian: str = "") -> ipb.OpenAccountRequest:
    return ipb.OpenAccountRequest(
        request_id=request_id, name=name, id_number=id_number, phone_number=phone, guardian_account_number=guardian,
        channel=common_pb2.CHANNEL_COMMUNITY_CENTRE, community_centre_id="c1", staff_id="s1",
    )  # fmt: skip


def walk(stub: identity_service_pb2_grpc.IdentityServiceStub) -> None:
    """The calls that carry ID and phone numbers, as the ops API makes them at a counter."""
    adult = stub.OpenAccount(at_counter("o1", "张三", SAMPLE_ID, "13812345678")).account.account_number
    child = stub.OpenAccount(at_counter("o2", "张小明", CHILD_ID, "13912345678", adult)).account.account_number
    stub.GrantConsent(
        ipb.GrantConsentRequest(
            request_id="g1",
            account_number=child,
            category=common_pb2.DATA_CATEGORY_TRANSIT,
            channel=common_pb2.CHANNEL_COMMUNITY_CENTRE,
            recorded_by="staff:s1",
            guardian_account_number=adult,
        )
    )
    with pytest.raises(grpc.RpcError):
        stub.CorrectRealNameRecord(
            ipb.CorrectRealNameRecordRequest(
                request_id="c1", account_number=adult, id_number=CHILD_ID, phone_number="13700000001", staff_id="s1"
            )
        )
    stub.CorrectRealNameRecord(
        ipb.CorrectRealNameRecordRequest(
            request_id="c2", account_number=adult, id_number=SAMPLE_ID, phone_number="13700000001", staff_id="s1"
        )
    )
    with pytest.raises(grpc.RpcError):
        stub.OpenAccount(at_counter("o3", "李四", SAMPLE_ID, "13812345678"))  # a name mismatch is refused and logged
    assert stub.ResolveAccount(ipb.ResolveAccountRequest(phone_number="13700000001")).account_number == adult


def test_no_id_or_phone_number_in_logs_or_traces(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("identity_svc", "330000"))
    carbon = logging.getLogger("carbon")
    carbon.addHandler(handler)
    level = carbon.level
    carbon.setLevel(logging.DEBUG)
    settings = TRUST.server(Settings(service="identity_svc", region_code="330000"))
    engine = make_engine(f"sqlite:///{tmp_path / 'identity.db'}")
    migrate("identity_svc", engine)
    servicer = IdentityServiceServicer(build_services(settings, engine, keys=make_keys()))
    running = start_server(
        settings,
        [Registration(identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, servicer, SERVICE_NAME)],
    )
    try:
        with TRUST.channel(running.address, identities.OPS_API) as channel:
            walk(identity_service_pb2_grpc.IdentityServiceStub(telemetry.instrument_channel(channel)))
    finally:
        running.stop()
        carbon.removeHandler(handler)
        carbon.setLevel(level)
        engine.dispose()
    logged = stream.getvalue()
    traced = repr(
        [
            (
                span.name,
                dict(span.attributes or {}),
                [(e.name, dict(e.attributes or {})) for e in span.events],
                span.status.description,
            )
            for span in spans.get_finished_spans()
        ]
    )
    assert "consent recorded" in logged and "real-name record corrected" in logged  # the walk was logged
    assert spans.get_finished_spans(), "nothing was traced"
    for secret in SECRETS:
        assert secret not in logged, f"a log line holds {secret[:4]}..."
        assert secret not in traced, f"a span holds {secret[:4]}..."
