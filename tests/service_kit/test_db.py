"""Engines and migrations work the same on SQLite (embedded) and PostgreSQL, and migrating twice is harmless."""

import pytest
from sqlalchemy import inspect, text

from service_kit.db import make_engine, migrate, normalize_url

SERVICES = ["identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "gateway", "ops_api"]


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    engine.dispose()


@pytest.mark.usefixtures("real_migrations")
@pytest.mark.parametrize("service", SERVICES)
def test_migrations_are_idempotent(database_url: str, service: str) -> None:
    engine = make_engine(database_url)
    migrate(service, engine)
    tables_once = set(inspect(engine).get_table_names())
    migrate(service, engine)
    assert set(inspect(engine).get_table_names()) == tables_once
    assert f"alembic_version_{service}" in tables_once
    engine.dispose()
