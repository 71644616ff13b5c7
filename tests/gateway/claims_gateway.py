"""An in-process gateway for activity claims: no regions behind it, one operator key, the test trust bundle; and a
claim as a regional ingest makes it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from gateway.server import registrations
from service_kit import identities
from service_kit.db import make_engine, migrate
from service_kit.server import RunningServer, start_server
from service_kit.settings import Settings
from tests.service_identities import TRUST

OPERATOR_KEY = "claims-operator-key"
OPERATOR = (("authorization", f"Bearer {OPERATOR_KEY}"),)


@contextmanager
def claims_gateway(tmp_path: Path, database_url: str, **extra: str) -> Iterator[RunningServer]:
    config = tmp_path / "gateway-config.json"
    digest = hashlib.sha256(OPERATOR_KEY.encode()).hexdigest()
    config.write_text(json.dumps({"callers": [{"id": "ops", "role": "operator", "keys": [{"sha256": digest}]}]}))
    env = {
        "CARBON_PORT": "0",
        "CARBON_GATEWAY_CONFIG": str(config),
        "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        **TRUST.env(identities.GATEWAY),
        **extra,
    }
    settings = Settings.from_env("gateway", env)
    engine = make_engine(database_url)
    migrate("gateway", engine)
    running = start_server(settings, registrations(settings, engine))
    try:
        yield running
    finally:
        running.stop()
        engine.dispose()


def stub_as(running: RunningServer, spiffe_id: str) -> tuple[grpc.Channel, gateway_service_pb2_grpc.GatewayServiceStub]:
    channel = TRUST.channel(f"127.0.0.1:{running.port}", spiffe_id)
    return channel, gateway_service_pb2_grpc.GatewayServiceStub(channel)


def claim_request(*claims: tuple[bytes, str, str, str]) -> gw.ClaimActivitiesRequest:
    """Claims as (fingerprint, day, partner, event id), all under key "k1"."""
    return gw.ClaimActivitiesRequest(
        fingerprints=[c[0] for c in claims],
        key_ids=["k1"] * len(claims),
        occurred_days=[c[1] for c in claims],
        partner_ids=[c[2] for c in claims],
        event_ids=[c[3] for c in claims],
    )
