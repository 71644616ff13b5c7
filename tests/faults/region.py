"""One region's services in-process (ledger, identity, ingest, rewards, the gateway), each on a PostgreSQL schema of
its own, for the tests that send them whatever a client might: the fuzz and the bad-input cases."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.domain.callers import key_digest_hex
from gateway.server import registrations as gateway_registrations
from identity_svc.server import registrations as identity_registrations
from incentives_svc.server import registrations as incentives_registrations
from ingest_svc.server import registrations as ingest_registrations
from ledger_svc.server import registrations as ledger_registrations
from rewards_svc.server import registrations as rewards_registrations
from service_kit.channels import TokenInterceptor, _ClientCallDetails
from service_kit.db import make_engine, migrate
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.topology import Registry, plan
from tests.service_identities import TRUST

REGION = "110000"
Registrations = Callable[[Settings, Any], list[Registration]]


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
    settings = TRUST.server(
        Settings.from_env(name, {"CARBON_REGION": REGION, "CARBON_DATA_DIR": str(data_dir / name), **extra})
    )
    engine = make_engine(database_url)
    migrate(name, engine)
    return start_server(settings, build(settings, engine)), engine


OPERATOR_KEY = "fault-tests"


def operator_config(folder: Path) -> Path:
    """The gateway's callers: one national operator, known by OPERATOR_KEY."""
    path = folder / "callers.json"
    callers = [{"id": "ops", "role": "operator", "key_sha256": key_digest_hex(OPERATOR_KEY)}]
    path.write_text(json.dumps({"callers": callers}), encoding="utf-8")
    return path


class OperatorKey(TokenInterceptor):
    """Presents OPERATOR_KEY to the gateway on every call."""

    def __init__(self) -> None:
        super().__init__(lambda: "")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = (*(details.metadata or ()), ("authorization", f"Bearer {OPERATOR_KEY}"))
        return _ClientCallDetails(details, metadata)


def _registry(servers: dict[str, RunningServer]) -> Registry:
    """The planned layout of REGION and 330000, with REGION's services at the addresses they listen on: the gateway
    forwards to them for real; 330000 has nothing listening (its accounts are UNAVAILABLE)."""
    planned = plan([REGION, "330000"], base_port=19350)
    regions = [
        replace(
            entry,
            identity_address=servers["identity_svc"].address,
            ingest_address=servers["ingest_svc"].address,
            ledger_address=servers["ledger_svc"].address,
            rewards_address=servers["rewards_svc"].address,
            incentives_address=servers["incentives_svc"].address,
        )
        if entry.region_code == REGION
        else entry
        for entry in planned.regions
    ]
    return replace(planned, regions=regions)


def start_region(postgres_server_url: str, data_dir: Path) -> Iterator[Region]:
    """ledger, identity, ingest, rewards, incentives and the gateway of one region, each on a PostgreSQL schema of its
    own;
    everything stopped and dropped afterwards."""
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
        # Incentives follows ingest's accepted events; the fuzzing reaches it directly and through the gateway.
        incentives_peers = {**peers, "CARBON_INGEST_ADDRESS": servers["ingest_svc"].address}
        servers["incentives_svc"], engine = _start(
            "incentives_svc",
            incentives_registrations,
            _schema_url(postgres_server_url, schemas),
            incentives_peers,
            data_dir,
        )
        engines.append(engine)
        registry = data_dir / "registry.json"
        _registry(servers).save(registry)
        gateway_extra = {
            "CARBON_REGISTRY_FILE": str(registry),
            "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
            "CARBON_GATEWAY_CONFIG": str(operator_config(data_dir)),
        }
        servers["gateway"], engine = _start(
            "gateway", gateway_registrations, _schema_url(postgres_server_url, schemas), gateway_extra, data_dir
        )
        engines.append(engine)
        # Each call presents an identity the access table allows for its method: the calls reach the services.
        channels = {name: TRUST.allowed_channel(server.address, REGION) for name, server in servers.items()}
        channels["gateway"] = grpc.intercept_channel(grpc.insecure_channel(servers["gateway"].address), OperatorKey())
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
