"""Every gRPC method of every service, fuzzed (issue 14, defect 5): random and boundary values in every field, and
bytes that do not decode, sent to one region's services running on PostgreSQL (where NUL bytes and column widths
bite). Whatever a client sends, the answer is never INTERNAL or UNKNOWN: bad input is INVALID_ARGUMENT, and anything
else is the service's decision.

CARBON_FUZZ_EXAMPLES sets the examples per method (default 50, which keeps the whole run within about a minute).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from hypothesis import HealthCheck, given, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from carbon.gateway.v1 import gateway_service_pb2
from carbon.identity.v1 import identity_service_pb2
from carbon.ingest.v1 import ingest_service_pb2
from carbon.ledger.v1 import ledger_service_pb2
from carbon.rewards.v1 import rewards_service_pb2
from gateway.server import registrations as gateway_registrations
from gateway.service.forwarding import ROUTES, SERVICE_NAMES
from identity_svc.server import registrations as identity_registrations
from ingest_svc.server import registrations as ingest_registrations
from ledger_svc.server import registrations as ledger_registrations
from rewards_svc.server import registrations as rewards_registrations
from service_kit.db import make_engine, migrate
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.topology import plan
from tests.faults.fuzzing import request_bytes

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
EXAMPLES = int(os.environ.get("CARBON_FUZZ_EXAMPLES", "50"))
REGION = "110000"
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
Registrations = Callable[[Settings, Any], list[Registration]]


def _service(module: Any, name: str) -> ServiceDescriptor:
    return module.DESCRIPTOR.services_by_name[name]  # type: ignore[no-any-return]


SERVICES: dict[str, ServiceDescriptor] = {
    "ledger_svc": _service(ledger_service_pb2, "LedgerService"),
    "identity_svc": _service(identity_service_pb2, "IdentityService"),
    "ingest_svc": _service(ingest_service_pb2, "IngestService"),
    "rewards_svc": _service(rewards_service_pb2, "RewardsService"),
    "gateway": _service(gateway_service_pb2, "GatewayService"),
}
_BY_NAME = {service.full_name: service for service in SERVICES.values()}


def _targets() -> list[tuple[str, MethodDescriptor]]:
    """(server, method) for every method of every service, and the gateway's forwarded regional methods."""
    found = [(server, method) for server, service in SERVICES.items() for method in service.methods]
    for route in ROUTES:
        found.append(("gateway", _BY_NAME[SERVICE_NAMES[route.service]].methods_by_name[route.method]))
    return found


@dataclass
class Region:
    servers: dict[str, RunningServer]
    channels: dict[str, grpc.Channel]


def _schema_url(admin_url: str, schemas: list[str]) -> str:
    schema = f"fz_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    schemas.append(schema)
    return make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)


def _start(
    name: str, build: Registrations, database_url: str, extra: dict[str, str], data_dir: Path
) -> tuple[RunningServer, Any]:
    settings = Settings.from_env(name, {"CARBON_REGION_CODE": REGION, "CARBON_DATA_DIR": str(data_dir / name), **extra})
    engine = make_engine(database_url)
    migrate(name, engine)
    return start_server(settings, build(settings, engine)), engine


@pytest.fixture(scope="module")
def region(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    """ledger, identity, ingest, rewards and the gateway of one region, each on a PostgreSQL schema of its own."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    schemas: list[str] = []
    engines: list[Any] = []
    servers: dict[str, RunningServer] = {}
    try:
        ledger, engine = _start(
            "ledger_svc", ledger_registrations, _schema_url(postgres_server_url, schemas), {}, data_dir
        )
        servers["ledger_svc"] = ledger
        engines.append(engine)
        peers = {"CARBON_LEDGER_ADDRESS": ledger.address, "CARBON_RECOVERY_INTERVAL_S": "3600"}
        servers["identity_svc"], engine = _start(
            "identity_svc", identity_registrations, _schema_url(postgres_server_url, schemas), peers, data_dir
        )
        engines.append(engine)
        peers["CARBON_IDENTITY_ADDRESS"] = servers["identity_svc"].address
        for name, build in (("ingest_svc", ingest_registrations), ("rewards_svc", rewards_registrations)):
            servers[name], engine = _start(name, build, _schema_url(postgres_server_url, schemas), peers, data_dir)
            engines.append(engine)
        registry = data_dir / "registry.json"
        plan([REGION, "330000"], base_port=19350).save(registry)
        gateway_extra = {"CARBON_REGISTRY_FILE": str(registry), "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0"}
        servers["gateway"], engine = _start(
            "gateway", gateway_registrations, _schema_url(postgres_server_url, schemas), gateway_extra, data_dir
        )
        engines.append(engine)
        channels = {name: grpc.insecure_channel(server.address) for name, server in servers.items()}
        yield Region(servers, channels)
        for channel in channels.values():
            channel.close()
    finally:
        for server in servers.values():
            server.stop()
        for engine in engines:
            engine.dispose()
        admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _call(channel: grpc.Channel, method: MethodDescriptor, payload: bytes) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming and method.server_streaming:
        list(channel.stream_stream(path, None, None)(iter([payload, payload]), timeout=20))
    elif method.client_streaming:
        channel.stream_unary(path, None, None)(iter([payload, payload]), timeout=20)
    elif method.server_streaming:
        list(channel.unary_stream(path, None, None)(payload, timeout=20))
    else:
        channel.unary_unary(path, None, None)(payload, timeout=20)


@pytest.mark.parametrize(
    ("server", "method"), _targets(), ids=[f"{server}:{method.full_name}" for server, method in _targets()]
)
def test_no_request_is_answered_internal_or_unknown(region: Region, server: str, method: MethodDescriptor) -> None:
    channel = region.channels[server]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payload=request_bytes(method.input_type))
    def fuzz(payload: bytes) -> None:
        try:
            _call(channel, method, payload)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            assert code not in FORBIDDEN, f"{method.full_name} answered {code.name}: {error.details()}"  # type: ignore[attr-defined]

    fuzz()
