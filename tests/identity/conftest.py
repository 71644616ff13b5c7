"""Fixtures for identity_svc: keys (and a resident-authorization signing key in a file), a movable clock, migrated
databases, services wired with an in-memory ledger, and each kind of consent cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from identity_svc.keys import KeyRing
from identity_svc.server import IdentityServices, build_services
from identity_svc.store.consent_cache import ConsentCache, InProcessConsentCache, RedisConsentCache
from service_kit.db import make_engine, migrate
from service_kit.settings import Settings
from tests.identity.identity_helpers import FakeClock, MemoryLedger, make_keys, write_signing_key


@pytest.fixture
def keys() -> KeyRing:
    return make_keys()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signing_key_file(tmp_path: Path) -> Path:
    return write_signing_key(tmp_path / "resident-auth-330000.pem")


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
def make_services(
    engine: Engine, keys: KeyRing, clock: FakeClock, ledger: MemoryLedger, signing_key_file: Path
) -> ServicesFactory:
    def make(cache: ConsentCache | None = None, region_code: str = "330000") -> IdentityServices:
        extra = {"CARBON_RESIDENT_AUTH_KEY_FILE": str(signing_key_file)}
        settings = Settings(service="identity_svc", region_code=region_code, extra=extra)
        return build_services(
            settings, engine, keys=keys, cache=cache or InProcessConsentCache(), ledger=ledger, clock=clock
        )

    return make


@pytest.fixture
def services(make_services: ServicesFactory) -> IdentityServices:
    return make_services()


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def cache(request: pytest.FixtureRequest) -> ConsentCache:
    if request.param == "in-process":
        return InProcessConsentCache()
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    client = redis.Redis.from_url(url)
    request.addfinalizer(lambda: [client.delete(key) for key in client.scan_iter(f"{prefix}*")])
    return RedisConsentCache(client, prefix)
