"""Fixtures for gateway tests: a two-region federation of real processes and an in-process gateway over it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

# This folder is called "gateway" too, and pytest puts tests/ on sys.path: make the service package win.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path[:1]:
    sys.path.insert(0, _ROOT)
for _name in [name for name in sys.modules if name == "gateway" or name.startswith("gateway.")]:
    if getattr(sys.modules[_name], "__file__", None) is None:
        del sys.modules[_name]

import pytest  # noqa: E402
from federation import Federation  # noqa: E402

from gateway.server import registrations  # noqa: E402
from service_kit.db import make_engine, migrate  # noqa: E402
from service_kit.server import RunningServer, start_server  # noqa: E402
from service_kit.settings import Settings  # noqa: E402

REGIONS = ["330000", "110000"]


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    fed = Federation(tmp_path, REGIONS)
    yield fed
    fed.close()


def start_inprocess_gateway(fed: Federation, **extra: str) -> RunningServer:
    env = {
        "CARBON_PORT": str(fed.gateway_port),
        "CARBON_REGISTRY_FILE": str(fed.registry_path),
        "CARBON_GATEWAY_CONFIG": str(fed.config_path),
        "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
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
