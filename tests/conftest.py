"""Fixtures for real services: PostgreSQL and Redis from environment URLs, else testcontainers, else a loud skip.

CARBON_TEST_DATABASE_URL / CARBON_TEST_REDIS_URL name the servers. Where they are unset and a Docker engine answers,
testcontainers starts them. Otherwise the tests that need them are skipped with the reason, unless
CARBON_REQUIRE_SERVICES=1 (CI), where their absence fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service_kit.db import normalize_url

REQUIRE_SERVICES = os.environ.get("CARBON_REQUIRE_SERVICES") == "1"


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _unavailable(what: str, variable: str) -> None:
    message = f"no {what}: set {variable} or run a Docker engine for testcontainers"
    if REQUIRE_SERVICES:
        pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL database the tests may create schemas in."""
    url = os.environ.get("CARBON_TEST_DATABASE_URL")
    if url:
        yield normalize_url(url)
        return
    if not _docker_available():
        _unavailable("PostgreSQL", "CARBON_TEST_DATABASE_URL")
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
        yield normalize_url(container.get_connection_url())


@pytest.fixture
def fresh_postgres_url(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty schemas on demand (one per service in a multi-service test); all dropped afterwards.

    Each URL's search_path points at its own schema, so a service sees only its tables.
    """
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    schemas: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        url = make_url(postgres_server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url(fresh_postgres_url: Callable[[], str]) -> str:
    """A fresh, empty schema for one test, as a URL whose search_path points at it; dropped afterwards."""
    return fresh_postgres_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite (the embedded default) and once on real PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    url = os.environ.get("CARBON_TEST_REDIS_URL")
    if url:
        yield url
        return
    if not _docker_available():
        _unavailable("Redis", "CARBON_TEST_REDIS_URL")
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7-alpine") as container:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """A real Redis; tests keep to keys under their own prefix (see redis_prefix)."""
    return redis_server_url


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"
