from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.region import Region, start_region
from tests.faults.servers import PrivatePostgres, PrivateRedis


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def region(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    yield from start_region(postgres_server_url, tmp_path_factory.mktemp("region"))
