"""Fixtures for gateway tests: a two-region federation of real processes and an in-process gateway over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.server import registrations
from service_kit import identities
from service_kit.db import make_engine, migrate
from service_kit.server import RunningServer, start_server
from service_kit.settings import Settings
from tests.gateway.federation import Federation
from tests.service_identities import TRUST

REGIONS = ["330000", "110000"]


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    fed = Federation(tmp_path, REGIONS, ledgers_in_process=True)
    yield fed
    fed.close()


def start_inprocess_gateway(fed: Federation, **extra: str) -> RunningServer:
    env = {
        "CARBON_PORT": str(fed.gateway_port),
        "CARBON_REGISTRY_FILE": str(fed.registry_path),
        "CARBON_GATEWAY_CONFIG": str(fed.config_path),
        "CARBON_RESIDENT_AUTH_JWKS_FILE": str(fed.jwks_path),
        "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
        **TRUST.env(identities.GATEWAY),
        **extra,
    }
    settings = Settings.from_env("gateway", env)
    engine = make_engine(fed.gateway_db_url)
    migrate("gateway", engine)
    return start_server(settings, registrations(settings, engine))


@pytest.fixture
def gateway(federation: Federation) -> Iterator[RunningServer]:
    running = start_inprocess_gateway(federation)
    yield running
    running.stop()
