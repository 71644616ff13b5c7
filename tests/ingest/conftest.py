"""Fixtures of the ingest tests (the harness itself is tests/ingest/ingest_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from service_kit.db import make_engine, migrate
from tests.ingest.ingest_harness import Harness, make_harness, real_clock


def _migrated(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    migrate("ingest_svc", engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """Ingest's schema, migrated, on SQLite and on PostgreSQL."""
    yield from _migrated(database_url)


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """Ingest's schema, migrated, on PostgreSQL."""
    yield from _migrated(postgres_url)


@pytest.fixture
def harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(database_url, data_dir=tmp_path)


@pytest.fixture
def real_harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Real identity and real ledger: the worked cases end to end."""
    yield from make_harness(database_url, data_dir=tmp_path, real_identity=True, clock=real_clock())


@pytest.fixture
def shanghai_harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(database_url, data_dir=tmp_path, region="310000")


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_harness(
    sqlite_url: str, redis_url: str, redis_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Harness]:
    yield from make_harness(
        sqlite_url, {"CARBON_INGEST_REDIS_PREFIX": redis_prefix}, redis_url=redis_url, data_dir=tmp_path
    )
