"""Fixtures for real services: PostgreSQL and Redis, fresh databases built from migrated templates.

Where the servers come from, first that answers: CARBON_TEST_DATABASE_URL / CARBON_TEST_REDIS_URL; the standard local
addresses (postgresql://postgres@127.0.0.1:5432/test, redis://127.0.0.1:6379/0); testcontainers, where a Docker engine
answers. Otherwise the tests that need them are skipped with the reason, loudly, unless CARBON_REQUIRE_SERVICES=1
(CI), where their absence fails the run. Under pytest-xdist each worker has a PostgreSQL database of its own on that
server (test_gw0, test_gw1, ..., created when missing). Every empty database a test migrates is built from a template
migrated once per service and dialect (tests/schema_templates.py); docs/adr/0009-test-databases.md says why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from service_kit import db
from service_kit.db import normalize_url
from tests.schema_templates import SchemaTemplates

if TYPE_CHECKING:
    from tests.e2e.test_embedded_system import System

REQUIRE_SERVICES = os.environ.get("CARBON_REQUIRE_SERVICES") == "1"
LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT_S = 2


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=PROBE_TIMEOUT_S).close()
    except psycopg.Error:
        return False
    return True


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _unavailable(what: str, variable: str, local_url: str) -> None:
    message = f"no {what}: set {variable}, run one at {local_url}, or run a Docker engine for testcontainers"
    if REQUIRE_SERVICES:
        pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


def database_of_this_worker(server_url: str, worker: str | None) -> str:
    """The URL itself, or under pytest-xdist a database of the worker's own beside it (created when missing), so
    parallel workers never share a database's advisory locks or plans."""
    if not worker:
        return server_url
    url = make_url(server_url)
    own = f"{url.database}_{worker}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": own}).first()
            if exists is None:
                try:
                    connection.execute(text(f'CREATE DATABASE "{own}"'))
                except ProgrammingError as error:  # another session created it in between: fine
                    if not isinstance(error.orig, psycopg.errors.DuplicateDatabase):
                        raise
    finally:
        admin.dispose()
    return url.set(database=own).render_as_string(hide_password=False)


def vacuum_catalogs(database_url: str) -> None:
    """VACUUMs the system catalogs of the database that hold dead rows. A run creates and drops some ten thousand
    tables in its schemas; every one leaves dead rows in pg_class, pg_attribute, pg_depend and pg_type. Where the
    server's autovacuum is off (as on the CI machine), nothing ever reclaims them: the catalogs grow with every run on
    the same server and DDL slows down with them (docs/adr/0028-test-catalogs-vacuumed.md). A plain VACUUM makes the
    space reusable, so a run leaves at most its own dead rows to the next; it needs no exclusive lock, so a suite
    running beside this one is not disturbed."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            bloated = connection.execute(
                text("SELECT relname FROM pg_stat_sys_tables WHERE schemaname = 'pg_catalog' AND n_dead_tup > 1000")
            ).scalars()
            names = ", ".join(f"pg_catalog.{name}" for name in sorted(bloated))
            if names:
                connection.execute(text(f"VACUUM {names}"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL database the tests may create schemas in."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = os.environ.get("CARBON_TEST_DATABASE_URL")
    if url or _postgres_answers(LOCAL_POSTGRES_URL):
        own = database_of_this_worker(normalize_url(url or LOCAL_POSTGRES_URL), worker)
        vacuum_catalogs(own)
        yield own
        return
    if not _docker_available():
        _unavailable("PostgreSQL", "CARBON_TEST_DATABASE_URL", LOCAL_POSTGRES_URL)
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
    if _redis_answers(LOCAL_REDIS_URL):
        yield LOCAL_REDIS_URL
        return
    if not _docker_available():
        _unavailable("Redis", "CARBON_TEST_REDIS_URL", LOCAL_REDIS_URL)
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


@pytest.fixture(scope="session", autouse=True)
def schema_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaTemplates]:
    """service_kit.db.migrate builds every empty database from a template migrated once per service and dialect."""
    templates = SchemaTemplates(tmp_path_factory.mktemp("schema-templates"))
    replaced = db.copy_empty_schemas_with(templates)
    try:
        yield templates
    finally:
        db.copy_empty_schemas_with(replaced)
        templates.drop()


@pytest.fixture
def real_migrations() -> Iterator[None]:
    """For a test of the migrations themselves: service_kit.db.migrate runs alembic even on an empty database."""
    replaced = db.copy_empty_schemas_with(None)
    try:
        yield
    finally:
        db.copy_empty_schemas_with(replaced)


@pytest.fixture(scope="session")
def shared_embedded_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One plaintext `carbon up` (17 processes) for the tests that only call into the system: the outsider's day and
    the example clients. Starting it costs some 25 s of CPU, so each worker starts it once, when a test first asks,
    and stops it at the end of the session. Every test on it uses request ids and persons of its own, and none stops
    or restarts it (the embedded-system test, which does both, starts its own; docs/adr/0025)."""
    from tests.e2e.test_embedded_system import System
    from tests.ports import UPWARDS, free_base_port

    running = System(tmp_path_factory.mktemp("shared-system") / "data", free_base_port(UPWARDS))
    running.up()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def telemetry_recorder() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """The in-memory recorder of this process's telemetry. OpenTelemetry's global providers can be set once per
    process, so every test of a worker that looks at spans or metrics shares it (a second configure is ignored)."""
    from service_kit import telemetry
    from service_kit.settings import Settings

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry.configure(Settings(service="ledger_svc"), span_exporter=exporter, metric_reader=reader)
    telemetry.disable()  # on only inside the tests that ask for it (recorded_telemetry)
    return exporter, reader


@pytest.fixture
def recorded_telemetry(
    telemetry_recorder: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    """Telemetry on for this test, recording in memory; off again afterwards, so other tests stay untraced."""
    from service_kit import telemetry

    telemetry.resume()
    yield telemetry_recorder
    telemetry.disable()
