"""The gateway as the front door, against a recording stand-in for the regions: what a call carries to the region and
back (deadline, request id, trace context, the caller; the region's status, ErrorInfo and trailing metadata
unchanged), the methods it refuses to serve (with a reason, absent from reflection), who may call what where, and a
client stream relayed without buffering the feed."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from gateway.domain.callers import key_digest_hex
from gateway.server import registrations
from service_kit.accounts import new_account_number
from service_kit.db import make_engine, migrate
from service_kit.errors import FailedPrecondition
from service_kit.server import RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details, status_for_error
from service_kit.topology import RegionEntry, Registry
from tests.gateway.federation import refusal

PAST = (datetime.now(UTC) - timedelta(days=1)).isoformat()
KEYS = {"zj": "zj-new-key", "zj-old": "zj-old-key", "partner": "partner-key", "ops": "ops-key"}


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {KEYS[name]}"),)


@dataclass
class Seen:
    method: str
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class FakeRegion:
    """Every regional method: records what arrived, then answers as told (by default an empty response)."""

    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]] = field(default_factory=dict)
    stream_delay_s: float = 0.0
    stream_received: int = 0

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        region = self

        class Handler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
                method: str = details.method  # type: ignore[attr-defined]
                if method.endswith("/StreamEvents"):
                    return grpc.stream_unary_rpc_method_handler(region.stream)
                return grpc.unary_unary_rpc_method_handler(
                    lambda request, context: region.unary(method, request, context)
                )

        return Handler()

    def record(self, method: str, context: grpc.ServicerContext) -> None:
        metadata = {key: str(value) for key, value in context.invocation_metadata() or []}
        self.seen.append(Seen(method, metadata, context.time_remaining()))

    def unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.record(method, context)
        answer = self.answers.get(method.rsplit("/", 1)[-1])
        return answer(request, context) if answer else b""

    def stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        self.record("/carbon.ingest.v1.IngestService/StreamEvents", context)
        for _ in requests:
            self.stream_received += 1
            time.sleep(self.stream_delay_s)
        return inpb.StreamEventsResponse(batches=self.stream_received).SerializeToString()


@dataclass
class FrontDoor:
    gateway: RunningServer
    region: FakeRegion
    channel: grpc.Channel


@pytest.fixture
def front_door(tmp_path: Path) -> Iterator[FrontDoor]:
    region = FakeRegion()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 32 * 1024 * 1024)],
    )
    server.add_generic_rpc_handlers((region.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    entries = [RegionEntry(code, code, code, address, address, address, address) for code in ("330000", "110000")]
    Registry("127.0.0.1:1", entries).save(tmp_path / "registry.json")
    callers = [
        {
            "id": "zj",
            "role": "platform",
            "platform": "alipay",
            "regions": ["330000"],
            "keys": [
                {"sha256": key_digest_hex(KEYS["zj-old"]), "not_after": PAST},
                {"sha256": key_digest_hex(KEYS["zj"])},
            ],
        },
        {
            "id": "partner",
            "role": "partner",
            "regions": ["330000"],
            "keys": [{"sha256": key_digest_hex(KEYS["partner"])}],
        },
        {"id": "ops", "role": "operator", "key_sha256": key_digest_hex(KEYS["ops"])},
    ]
    (tmp_path / "callers.json").write_text(json.dumps({"callers": callers}))
    settings = Settings.from_env(
        "gateway",
        {
            "CARBON_REGISTRY_FILE": str(tmp_path / "registry.json"),
            "CARBON_GATEWAY_CONFIG": str(tmp_path / "callers.json"),
            "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        },
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate("gateway", engine)
    gateway = start_server(settings, registrations(settings, engine))
    channel = grpc.insecure_channel(gateway.address)
    yield FrontDoor(gateway, region, channel)
    channel.close()
    gateway.stop()
    server.stop(0).wait()


def test_a_call_reaches_the_region_with_its_deadline_request_id_trace_and_the_caller_not_its_key(
    front_door: FrontDoor,
) -> None:
    zj = new_account_number("330000")
    stub = ledger_service_pb2_grpc.LedgerServiceStub(front_door.channel)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    metadata = (*bearer("zj"), ("x-request-id", "req-42"), ("traceparent", traceparent))
    stub.GetBalance(lpb.GetBalanceRequest(account=zj), metadata=metadata, timeout=7)
    seen = front_door.region.seen[-1]
    assert seen.method == "/carbon.ledger.v1.LedgerService/GetBalance"
    # The same trace reaches the region. Its parent span is the caller's, or the gateway's own when this process
    # records telemetry (another test of the worker may have configured it): compare the trace, not the span.
    version, trace_id, _, flags = seen.metadata["traceparent"].split("-")
    assert seen.metadata["x-request-id"] == "req-42"
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert seen.metadata["x-carbon-caller"] == "zj" and seen.metadata["x-carbon-caller-platform"] == "alipay"
    assert "authorization" not in seen.metadata
    # gRPC rounds a deadline up when it writes it into the grpc-timeout header, so the
    # region may see a little more than the caller asked for; the deadline reaches it, not the gateway's own.
    assert seen.time_remaining is not None and 6 < seen.time_remaining <= 7.5


def test_the_regions_refusal_comes_back_unchanged_with_all_its_trailing_metadata(front_door: FrontDoor) -> None:
    def refuse(_request: bytes, context: grpc.ServicerContext) -> bytes:
        error = FailedPrecondition("ACCOUNT_CLOSED", "account is closed", {"account_number": "x"})
        status = status_for_error(error, "identity.carbon-account")
        context.set_trailing_metadata((*status.trailing_metadata, ("x-region-note", "kept")))
        context.abort(status.code, status.details)

    front_door.region.answers["GetAccount"] = refuse
    stub = identity_service_pb2_grpc.IdentityServiceStub(front_door.channel)
    request = idpb.GetAccountRequest(account_number=new_account_number("330000"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetAccount(request, metadata=bearer("zj"), timeout=5)
    details = error_details(caught.value)
    assert (details.code, details.reason, details.domain) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_CLOSED",
        "identity.carbon-account",
    )
    assert details.message == "account is closed" and details.metadata == {"account_number": "x"}
    error: Any = caught.value
    trailing = {str(key): value for key, value in error.trailing_metadata()}
    assert trailing["x-region-note"] == "kept" and "grpc-status-details-bin" in trailing


def test_an_answer_comes_back_with_the_regions_metadata(front_door: FrontDoor) -> None:
    def answer(_request: bytes, context: grpc.ServicerContext) -> bytes:
        context.send_initial_metadata((("x-region-initial", "i"),))
        context.set_trailing_metadata((("x-region-trailing", "t"),))
        return lpb.GetBalanceResponse(balance=lpb.Balance(available_points=7)).SerializeToString()

    front_door.region.answers["GetBalance"] = answer
    stub = ledger_service_pb2_grpc.LedgerServiceStub(front_door.channel)
    request = lpb.GetBalanceRequest(account=new_account_number("330000"))
    response, call = stub.GetBalance.with_call(request, metadata=bearer("zj"), timeout=5)
    assert response.balance.available_points == 7
    assert dict(call.initial_metadata())["x-region-initial"] == "i"
    assert dict(call.trailing_metadata())["x-region-trailing"] == "t"


def test_methods_the_gateway_does_not_serve_are_refused_with_a_reason_and_not_advertised(
    front_door: FrontDoor,
) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(front_door.channel)
    earn = lpb.PostTransfersRequest(transfers=[lpb.Transfer(transfer_id="t", amount_points=1_000_000)])
    code, reason, meta = refusal(lambda: stub.PostTransfers(earn, metadata=bearer("ops"), timeout=5))
    assert (code, reason) == (grpc.StatusCode.UNIMPLEMENTED, "METHOD_NOT_SERVED_BY_GATEWAY")
    assert meta["method"] == "carbon.ledger.v1.LedgerService/PostTransfers"
    garbled = front_door.channel.unary_unary("/carbon.ledger.v1.LedgerService/GetBalance", None, None)
    code, _, meta = refusal(lambda: garbled(b"\xff\xff", metadata=bearer("ops"), timeout=5))
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "request")
    nowhere = front_door.channel.unary_unary("/no.such.Service/Nothing", None, None)
    code, reason, _ = refusal(lambda: nowhere(b"", timeout=5))
    assert (code, reason) == (grpc.StatusCode.UNIMPLEMENTED, "METHOD_NOT_SERVED_BY_GATEWAY")
    assert front_door.region.seen == []

    database = ProtoReflectionDescriptorDatabase(front_door.channel)
    assert "carbon.ledger.v1.LedgerService" in database.get_services()
    file: descriptor_pb2.FileDescriptorProto = database.FindFileContainingSymbol("carbon.ledger.v1.LedgerService")
    ledger_methods = {method.name for method in next(s for s in file.service if s.name == "LedgerService").method}
    assert ledger_methods == {
        "GetBalance",
        "ListStatementEntries",
        "ListLots",
        "ListExpiringPoints",
        "GetMonthlySummary",
    }


def test_callers_are_authenticated_and_kept_to_their_regions_and_methods(front_door: FrontDoor) -> None:
    stub = ledger_service_pb2_grpc.LedgerServiceStub(front_door.channel)
    zj, bj = new_account_number("330000"), new_account_number("110000")
    cases = [
        ((), zj, grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
        ((("authorization", "Bearer wrong"),), zj, grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID"),
        (bearer("zj-old"), zj, grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_EXPIRED"),
        (bearer("zj"), bj, grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH"),
        (bearer("partner"), zj, grpc.StatusCode.PERMISSION_DENIED, "METHOD_NOT_ALLOWED_FOR_CALLER"),
    ]
    for metadata, account, code, reason in cases:
        call = functools.partial(stub.GetBalance, lpb.GetBalanceRequest(account=account), metadata=metadata, timeout=5)
        assert refusal(call)[:2] == (code, reason)
    assert front_door.region.seen == []
    stub.GetBalance(lpb.GetBalanceRequest(account=zj), metadata=bearer("zj"), timeout=5)  # the new key works
    stub.GetBalance(lpb.GetBalanceRequest(account=bj), metadata=bearer("ops"), timeout=5)
    # Each account is asked of identity once before its first ledger read (ADR 0612), then only the ledger.
    stub.GetBalance(lpb.GetBalanceRequest(account=zj), metadata=bearer("zj"), timeout=5)
    methods = [seen.method.rsplit("/", 1)[-1] for seen in front_door.region.seen]
    assert methods == ["GetAccount", "GetBalance", "GetAccount", "GetBalance", "GetBalance"]


def test_calls_without_an_account_go_to_the_region_named_in_metadata_within_the_callers_scope(
    front_door: FrontDoor,
) -> None:
    stub = ingest_service_pb2_grpc.IngestServiceStub(front_door.channel)
    batch = inpb.SubmitEventsRequest(partner_id="p")
    code, _, meta = refusal(lambda: stub.SubmitEvents(batch, metadata=bearer("partner"), timeout=5))
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "x-carbon-region")
    elsewhere = (*bearer("partner"), ("x-carbon-region", "110000"))
    assert refusal(lambda: stub.SubmitEvents(batch, metadata=elsewhere, timeout=5))[1] == "CALLER_REGION_MISMATCH"
    unknown = (*bearer("partner"), ("x-carbon-region", "990000"))
    assert refusal(lambda: stub.SubmitEvents(batch, metadata=unknown, timeout=5))[1] == "REGION_NOT_FEDERATED"
    stub.SubmitEvents(batch, metadata=(*bearer("partner"), ("x-carbon-region", "330000")), timeout=5)
    assert [seen.method for seen in front_door.region.seen] == ["/carbon.ingest.v1.IngestService/SubmitEvents"]
    identity = identity_service_pb2_grpc.IdentityServiceStub(front_door.channel)
    by_id = idpb.ResolveAccountRequest(id_number="330106199003071236")
    in_zj = (*bearer("zj"), ("x-carbon-region", "330000"))
    assert refusal(lambda: identity.ResolveAccount(by_id, metadata=in_zj, timeout=5))[1] == (
        "LOOKUP_NOT_ALLOWED_FOR_CALLER"
    )


def test_list_regions_shows_internal_addresses_only_to_the_operator(front_door: FrontDoor) -> None:
    stub = gateway_service_pb2_grpc.GatewayServiceStub(front_door.channel)
    platform = stub.ListRegions(gw.ListRegionsRequest(), metadata=bearer("zj"), timeout=10)
    operator = stub.ListRegions(gw.ListRegionsRequest(), metadata=bearer("ops"), timeout=10)
    assert [region.region_code for region in platform.regions] == ["110000", "330000"]
    assert all(not region.ledger_address and not region.ingest_address for region in platform.regions)
    assert all(region.ledger_address and region.ingest_address for region in operator.regions)


def test_a_slow_region_slows_a_stream_instead_of_the_gateway_buffering_the_feed(front_door: FrontDoor) -> None:
    front_door.region.stream_delay_s = 0.005
    feed_batches = 400
    batch = inpb.StreamEventsRequest(batch=inpb.SubmitEventsRequest(partner_id="p", batch_id="x" * 100_000))
    sent = 0
    lead = 0
    lock = threading.Lock()

    def feed() -> Iterator[inpb.StreamEventsRequest]:
        nonlocal sent, lead
        for _ in range(feed_batches):
            with lock:
                lead = max(lead, sent - front_door.region.stream_received)
                sent += 1
            yield batch

    stub = ingest_service_pb2_grpc.IngestServiceStub(front_door.channel)
    metadata = (*bearer("partner"), ("x-carbon-region", "330000"))
    summary = stub.StreamEvents(feed(), metadata=metadata, timeout=60)
    assert summary.batches == feed_batches
    # The feed is 40 MB. What is ahead of the region at any moment is what the HTTP/2 windows of the two hops hold
    # (they grow with the link), not the feed: the gateway reads a batch only once the region's side took the last.
    assert lead < feed_batches // 2, f"{lead} of {feed_batches} batches were ahead of the region"
