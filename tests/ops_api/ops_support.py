"""A small federation in-process for ops API tests: two regions of real identity, ingest, ledger and rewards
servers on SQLite, the real gateway, and the ops API on top (through TestClient, or real uvicorn on a real port)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from carbon.ingest.v1 import ingest_service_pb2 as inpb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from gateway.domain.callers import key_digest_hex
from gateway.server import registrations as gateway_registrations
from identity_svc.domain.real_name import id_check_char
from identity_svc.server import registrations as identity_registrations
from incentives_svc.server import registrations as incentives_registrations
from ingest_svc.server import registrations as ingest_registrations
from ledger_svc.server import registrations as ledger_registrations
from ops_api.app import create_app
from ops_api.context import build_context
from ops_api.service.staff import create_user, issue_token
from ops_api.settings import OpsSettings
from rewards_svc.server import registrations as rewards_registrations
from service_kit.clock import system_clock
from service_kit.db import make_engine, migrate
from service_kit.embedded_front_door import resident_auth_key_file, write_resident_auth_keys
from service_kit.server import RunningServer, start_server
from service_kit.settings import Secret, Settings
from service_kit.topology import RegionEntry, Registry
from tests.service_identities import TRUST

REGIONS = ("330000", "110000")
PARTNER = "community-centre"
# The ops API's key at the gateway (a national operator there).
GATEWAY_KEY = "ops-api-gateway-key"
STAFF = {
    "admin": ("admin", "", ""),
    "op1": ("operator", "", ""),
    "op2": ("operator", "", ""),
    "viewer": ("viewer", "", ""),
    "zj-staff": ("community_staff", "330000", "zj-gongshu-1"),
    "bj-staff": ("community_staff", "110000", "bj-dongcheng-2"),
}


PEOPLE = itertools.count(1)
REQUEST_IDS = itertools.count(1)


def wait_for(condition: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    """Polls a condition (not a sleep for synchronisation: returns as soon as it holds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Federation:
    root: Path
    registry_path: Path
    partner_secrets: dict[str, str]
    servers: list[RunningServer] = field(default_factory=list)
    engines: list[Engine] = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        for engine in self.engines:
            engine.dispose()


def _serve(root: Path, service: str, code: str, build: Any, extra: dict[str, str] | None = None) -> tuple[Any, Any]:
    settings = TRUST.server(
        Settings(service=service, region_code=code, data_dir=root, extra=extra or {}, max_workers=32)
    )
    engine = make_engine(f"sqlite:///{root / f'{service}-{code}.db'}")
    migrate(service, engine)
    return start_server(settings, build(settings, engine)), engine


# Beijing's ledger runs its scheduler (as `carbon up` does), ticking often, so runs asked for are picked up at once;
# Zhejiang's does not, so the tests of `carbon expire` there count what they swept themselves.
SCHEDULED_REGION = "110000"
SCHEDULER = {"CARBON_LEDGER_SCHEDULER": "1", "CARBON_LEDGER_SCHEDULER_TICK_MS": "100"}


def own_settings(service: str, code: str, signing: dict[str, str], started: dict[str, str]) -> dict[str, str] | None:
    """Identity's signing key; the scheduled region's ledger runs its jobs and queues reminders in its identity."""
    if service == "identity_svc":
        return signing
    return {**SCHEDULER, "CARBON_IDENTITY_ADDRESS": started["identity_svc"]} if code == SCHEDULED_REGION else None


def start_federation(root: Path) -> Federation:
    federation = Federation(root, root / "registry.json", {})
    # Each region's identity signs resident authorizations (counter staff's, for cross-region transfers); the
    # gateway verifies them with the regions' public keys, as `carbon up` sets them up.
    jwks = write_resident_auth_keys(
        root, Registry("", [RegionEntry(code, code, code, "", "", "", "") for code in REGIONS])
    )
    entries = []
    for code in REGIONS:
        started: dict[str, str] = {}
        for service, build in (("identity_svc", identity_registrations), ("ledger_svc", ledger_registrations)):
            signing = {"CARBON_RESIDENT_AUTH_KEY_FILE": str(resident_auth_key_file(root, code))}
            server, engine = _serve(root, service, code, build, own_settings(service, code, signing, started))
            federation.servers.append(server)
            federation.engines.append(engine)
            started[service] = server.address
        wiring = {"CARBON_LEDGER_ADDRESS": started["ledger_svc"], "CARBON_IDENTITY_ADDRESS": started["identity_svc"]}
        for service, build in (("ingest_svc", ingest_registrations), ("rewards_svc", rewards_registrations)):
            extra = {**wiring, "CARBON_INGEST_RESUME_ON_START": "0"}
            server, engine = _serve(root, service, code, build, extra)
            federation.servers.append(server)
            federation.engines.append(engine)
            started[service] = server.address
        incentives_wiring = {
            **wiring,
            "CARBON_INGEST_ADDRESS": started["ingest_svc"],
            "CARBON_INCENTIVES_FOLLOW_INTERVAL_MS": "0",
        }
        server, engine = _serve(root, "incentives_svc", code, incentives_registrations, incentives_wiring)
        federation.servers.append(server)
        federation.engines.append(engine)
        entries.append(
            RegionEntry(
                code, f"Region {code}", code, started["identity_svc"], started["ingest_svc"],
                started["ledger_svc"], started["rewards_svc"], server.address,
            )
        )  # fmt: skip
        federation.partner_secrets[code] = register_community_partner(started["ingest_svc"], code)
    Registry("127.0.0.1:1", entries).save(federation.registry_path)
    callers = [{"id": "ops-api", "role": "operator", "key_sha256": key_digest_hex(GATEWAY_KEY)}]
    (root / "gateway-callers.json").write_text(json.dumps({"callers": callers}))
    gateway_extra = {
        "CARBON_GATEWAY_CONFIG": str(root / "gateway-callers.json"),
        "CARBON_RESIDENT_AUTH_JWKS_FILE": str(jwks),
        "CARBON_REGISTRY_FILE": str(federation.registry_path),
        "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
    }
    gateway, engine = _serve(root, "gateway", "000000", gateway_registrations, gateway_extra)
    federation.servers.append(gateway)
    federation.engines.append(engine)
    Registry(gateway.address, entries).save(federation.registry_path)
    return federation


def running_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """A federation for a fixture: started in a fresh folder, stopped when the fixture ends."""
    running = start_federation(Path(tmp_path_factory.mktemp("ops-federation")))
    try:
        yield running
    finally:
        running.stop()


def register_community_partner(ingest_address: str, region_code: str) -> str:
    with TRUST.allowed_channel(ingest_address, region_code) as channel:
        response = ingest_service_pb2_grpc.IngestServiceStub(channel).RegisterPartner(
            inpb.RegisterPartnerRequest(
                request_id="register-community-centre",
                partner=inpb.Partner(
                    partner_id=PARTNER,
                    name="Community centres",
                    kind=inpb.PARTNER_KIND_COMMUNITY_CENTRE,
                    allowed_behaviours=["tree_planting", "sorting_supervisor_day"],
                    allowed_regions=list(REGIONS),
                ),
            ),
            timeout=10,
        )
    return str(response.secret)


@dataclass
class Ops:
    """The ops API over a federation, with one bearer token per staff member in STAFF."""

    app: FastAPI
    client: TestClient
    engine: Engine
    tokens: dict[str, str]
    federation: Federation
    # Shared by every Ops over a federation: residents and request ids stay unique across test modules.
    people: itertools.count[int] = field(default_factory=lambda: PEOPLE)
    ids: itertools.count[int] = field(default_factory=lambda: REQUEST_IDS)
    last_person: int = 0

    def headers(self, who: str, request_id: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        headers["X-Request-Id"] = request_id or f"req-{next(self.ids)}"
        return headers

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(path, headers=self.headers(who), params=params)

    def post(self, who: str, path: str, body: dict[str, Any] | None = None, request_id: str = "") -> Any:
        return self.client.post(path, headers=self.headers(who, request_id), json=body or {})

    def open_account(self, who: str = "zj-staff", region: str = "330000", consent: bool = True, person: int = 0) -> str:
        """Opens an account for a new resident (or for `person` again, in another region)."""
        person = person or next(self.people)
        self.last_person = person
        first17 = f"33010619{70 + person % 30}0{person % 9 + 1}1{person % 9 + 1}{person % 1000:03d}"
        body = {"region_code": region, "name": "王秀英", "id_number": first17 + id_check_char(first17),
                "phone_number": f"139{person:08d}"}  # fmt: skip
        if who in {"op1", "op2", "admin"}:
            body["centre_id"] = "national-desk"
        response = self.post(who, "/v1/accounts", body)
        assert response.status_code == 201, response.text
        number = str(response.json()["account"]["account_number"])
        if consent:
            granted = self.post(
                who, f"/v1/accounts/{number}/consents", {"category": "COMMUNITY_ACTIVITY", "grant": True}
            )
            assert granted.status_code == 200, granted.text
        return number

    def plant_trees(self, account: str, who: str = "zj-staff", times: int = 1) -> Any:
        """`times` separate plantings (one event each; one planting is the most a single event may claim)."""
        for _ in range(times):
            response = self.post(who, f"/v1/accounts/{account}/community-events", {"behaviour": "tree_planting"})
        return response


def make_ops(
    federation: Federation, *, rate_limit_per_minute: int = 100_000, redis_url: str = "", redis_prefix: str = ""
) -> Ops:
    base = TRUST.server(
        Settings(
            service="ops_api", redis_url=redis_url, extra={"CARBON_REDIS_PREFIX": redis_prefix} if redis_prefix else {}
        )
    )
    secrets = {f"community_partner_{code}": Secret(secret) for code, secret in federation.partner_secrets.items()}
    secrets["gateway_api_key"] = Secret(GATEWAY_KEY)
    settings = OpsSettings(
        base=base,
        registry_file=federation.registry_path,
        rate_limit_per_minute=rate_limit_per_minute,
        community_partner_id=PARTNER,
        secrets=secrets,
    )
    engine = make_engine(f"sqlite:///{federation.root / f'ops-{next(_ops_dbs)}.db'}")
    migrate("ops_api", engine)
    context = build_context(settings, engine)
    app = create_app(context)
    tokens = {}
    for user_id, (role, region, centre) in STAFF.items():
        create_user(engine, system_clock(), user_id, role, region_code=region, centre_id=centre)
        tokens[user_id] = issue_token(engine, system_clock(), user_id, "tests").token
    return Ops(app, TestClient(app, raise_server_exceptions=False), engine, tokens, federation)


_ops_dbs = itertools.count(1)


@dataclass
class RunningApi:
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve_uvicorn(app: FastAPI) -> Generator[RunningApi, None, None]:
    """The app on real uvicorn on a free port, in a thread; stops when the generator closes."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ops-uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started and server.servers, what="uvicorn to listen")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningApi(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
