"""Fixtures for identity_svc: keys, a movable clock, migrated databases, services wired with an in-memory ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from identity_svc.consent_cache import ConsentCache, InProcessConsentCache
from identity_svc.crypto import KeyRing
from identity_svc.server import IdentityServices, build_services
from service_kit.db import make_engine, migrate
from service_kit.settings import Settings
from tests.identity.identity_helpers import FakeClock, MemoryLedger, make_keys


@pytest.fixture
def keys() -> KeyRing:
    return make_keys()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate("identity_svc", engine)
    yield engine
    engine.dispose()


ServicesFactory = Callable[..., IdentityServices]


@pytest.fixture
def make_services(engine: Engine, keys: KeyRing, clock: FakeClock, ledger: MemoryLedger) -> ServicesFactory:
    def make(cache: ConsentCache | None = None, region_code: str = "330000") -> IdentityServices:
        settings = Settings(service="identity_svc", region_code=region_code)
        return build_services(
            settings, engine, keys=keys, cache=cache or InProcessConsentCache(), ledger=ledger, clock=clock
        )

    return make


@pytest.fixture
def services(make_services: ServicesFactory) -> IdentityServices:
    return make_services()
