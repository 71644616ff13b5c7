"""Admission at the front door: callers known by API key or client certificate, each rate limited on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from cryptography.hazmat.primitives import serialization

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from gateway.server import registrations
from service_kit.accounts import new_account_number
from service_kit.channels import open_channel
from service_kit.db import make_engine, migrate
from service_kit.server import RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from service_kit.topology import plan
from tests.gateway.conftest import start_inprocess_gateway
from tests.gateway.federation import Federation, metadata, refusal
from tests.service_kit.test_tls import _issue, _write


def test_an_unknown_key_is_unauthenticated(federation: Federation, gateway: RunningServer) -> None:
    request = gw.GetCrossRegionTransferRequest(transfer_id="x")
    with pytest.raises(grpc.RpcError) as caught:
        federation.gateway().GetCrossRegionTransfer(request, metadata=(("authorization", "Bearer nope"),), timeout=5)
    assert error_details(caught.value).code == grpc.StatusCode.UNAUTHENTICATED


def limited_config(fed: Federation) -> None:
    """The zj platform may make 3 calls and then nearly none (one token per 1000 s)."""
    config = json.loads(fed.config_path.read_text())
    for caller in config["callers"]:
        if caller["id"] == "zj":
            caller.update({"rate_per_s": 0.001, "burst": 3})
    fed.config_path.write_text(json.dumps(config))


def calls_until_limited(fed: Federation, caller: str) -> list[str]:
    request = gw.ListCrossRegionTransfersRequest(
        account_number=fed.open_account("330000" if caller == "zj" else "110000")
    )
    outcomes = []
    for _ in range(4):
        try:
            fed.gateway().ListCrossRegionTransfers(request, metadata=metadata(caller), timeout=5)
            outcomes.append("OK")
        except grpc.RpcError as error:
            details = error_details(error)
            assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            outcomes.append(details.reason)
    return outcomes


@pytest.mark.parametrize("store", ["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def test_each_caller_is_rate_limited_on_its_own(
    federation: Federation, request: pytest.FixtureRequest, store: str
) -> None:
    limited_config(federation)
    extra = {}
    if store == "redis":
        prefix = str(request.getfixturevalue("redis_prefix"))
        extra = {"CARBON_REDIS_URL": str(request.getfixturevalue("redis_url")), "CARBON_REDIS_PREFIX": prefix}
    running = start_inprocess_gateway(federation, **extra)
    try:
        assert calls_until_limited(federation, "zj") == ["OK", "OK", "OK", "RATE_LIMITED"]
        assert calls_until_limited(federation, "bj") == ["OK"] * 4
    finally:
        running.stop()
    if store == "redis":
        client = redis.Redis.from_url(extra["CARBON_REDIS_URL"])
        keys = client.keys(f"{extra['CARBON_REDIS_PREFIX']}*")
        assert keys
        client.delete(*keys)


@pytest.fixture
def mtls_gateway(tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, Settings]]]:
    ca_key, ca_cert = _issue("carbon-test-ca", None, None, ca=True)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = _write(tmp_path, "gateway", *_issue("gateway", ca_key, ca_cert.subject))
    clients = {
        name: _write(tmp_path, name, *_issue(name, ca_key, ca_cert.subject))
        for name in ["zj-platform.example", "unknown.example"]
    }
    registry, config = tmp_path / "registry.json", tmp_path / "config.json"
    plan(["330000", "110000"], base_port=19150).save(registry)
    callers = [{"id": "zj", "region": "330000", "role": "platform", "tls_common_name": "zj-platform.example"}]
    config.write_text(json.dumps({"callers": callers}))
    env = {
        "CARBON_REGISTRY_FILE": str(registry),
        "CARBON_GATEWAY_CONFIG": str(config),
        "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        "CARBON_TLS_CERT_FILE": server_cert,
        "CARBON_TLS_KEY_FILE": server_key,
        "CARBON_TLS_CA_FILE": str(ca),
    }
    settings = Settings.from_env("gateway", env)
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate("gateway", engine)
    running = start_server(settings, registrations(settings, engine))
    client_settings = {
        name: Settings(service="client", tls_cert_file=cert, tls_key_file=key, tls_ca_file=str(ca))
        for name, (cert, key) in clients.items()
    }
    yield running, client_settings
    running.stop()


def get_transfer(running: RunningServer, settings: Settings, transfer_id: str) -> gw.GetCrossRegionTransferResponse:
    with open_channel(f"localhost:{running.port}", settings) as channel:
        response: gw.GetCrossRegionTransferResponse = gateway_service_pb2_grpc.GatewayServiceStub(
            channel
        ).GetCrossRegionTransfer(gw.GetCrossRegionTransferRequest(transfer_id=transfer_id), timeout=5)
    return response


def list_transfers(running: RunningServer, settings: Settings, account: str) -> gw.ListCrossRegionTransfersResponse:
    with open_channel(f"localhost:{running.port}", settings) as channel:
        response: gw.ListCrossRegionTransfersResponse = gateway_service_pb2_grpc.GatewayServiceStub(
            channel
        ).ListCrossRegionTransfers(gw.ListCrossRegionTransfersRequest(account_number=account), timeout=5)
    return response


def test_a_client_certificate_names_the_caller(mtls_gateway: tuple[RunningServer, dict[str, Settings]]) -> None:
    running, clients = mtls_gateway
    zj = clients["zj-platform.example"]
    # Admitted as zj: the gateway looks the transfer up (no region runs here, and none is needed for that).
    code, reason, _ = refusal(lambda: get_transfer(running, zj, "no-such-transfer"))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND")
    code, reason, _ = refusal(lambda: list_transfers(running, zj, new_account_number("110000")))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_REGION_MISMATCH")
    code, _, _ = refusal(lambda: list_transfers(running, clients["unknown.example"], new_account_number("330000")))
    assert code == grpc.StatusCode.UNAUTHENTICATED
