"""The GatewayService at the gRPC level: the regions listed with their live health, paged, and bad paging refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from gateway.domain.callers import key_digest_hex
from gateway.server import registrations
from service_kit.db import make_engine
from service_kit.server import RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from service_kit.topology import plan

OPS = (("authorization", "Bearer k"),)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningServer]:
    path = tmp_path / "registry.json"
    plan(["330000", "110000", "310000"], base_port=19050).save(path)
    config = tmp_path / "callers.json"
    config.write_text(json.dumps({"callers": [{"id": "ops", "role": "operator", "key_sha256": key_digest_hex("k")}]}))
    settings = Settings.from_env(
        "gateway",
        {
            "CARBON_GATEWAY_CONFIG": str(config),
            "CARBON_REGISTRY_FILE": str(path),
            "CARBON_DATA_DIR": str(tmp_path),
            "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        },
    )
    running = start_server(settings, registrations(settings, make_engine(f"sqlite:///{tmp_path / 'gw.db'}")))
    yield running
    running.stop()


def test_list_regions_pages_through_the_registry_with_health(gateway: RunningServer) -> None:
    with grpc.insecure_channel(gateway.address) as channel:
        stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
        first = stub.ListRegions(gateway_service_pb2.ListRegionsRequest(page_size=2), metadata=OPS, timeout=10)
        second = stub.ListRegions(
            gateway_service_pb2.ListRegionsRequest(page_size=2, page_token=first.next_page_token),
            metadata=OPS,
            timeout=10,
        )
    assert [region.region_code for region in first.regions] == ["110000", "310000"]
    assert [region.region_code for region in second.regions] == ["330000"]
    assert second.next_page_token == ""
    # Nothing listens on the planned ports in this test: every region reports it.
    assert {region.health for region in [*first.regions, *second.regions]} == {"NOT_SERVING"}
    assert first.regions[0].name_zh == "北京"


def test_list_regions_refuses_a_negative_page_size(gateway: RunningServer) -> None:
    with grpc.insecure_channel(gateway.address) as channel, pytest.raises(grpc.RpcError) as caught:
        gateway_service_pb2_grpc.GatewayServiceStub(channel).ListRegions(
            gateway_service_pb2.ListRegionsRequest(page_size=-1), metadata=OPS, timeout=10
        )
    details = error_details(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT and details.metadata["field"] == "page_size"
