"""Engines and migrations work the same on SQLite (embedded) and PostgreSQL, and migrating twice is harmless."""

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from service_kit import db, failures
from service_kit.db import make_engine, migrate, normalize_url

SERVICES = ["identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc", "gateway", "ops_api"]


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


@pytest.mark.postgres
def test_a_postgres_engine_opens_no_more_than_its_pool_size(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=2)
    held = [engine.connect(), engine.connect()]
    third: list[Connection] = []
    waiter = threading.Thread(target=lambda: third.append(engine.connect()))
    waiter.start()
    waiter.join(timeout=0.5)
    assert waiter.is_alive() and not third, "a third connection was opened beside a full pool"

    held.pop().close()
    waiter.join(timeout=30)

    assert len(third) == 1, "the waiting thread got the connection given back"
    for connection in [*held, *third]:
        connection.close()
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill_backend(url: str, pid: int) -> None:
    killer = make_engine(url, pool_size=1)
    with killer.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()


def test_a_connection_given_back_a_moment_ago_is_used_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url, pool_size=1)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", pings.append)
    for _ in range(3):
        _backend_pid(engine)
    assert pings == []
    monkeypatch.setattr(db, "PING_IDLE_AFTER_S", 0.0)  # as if it sat idle
    _backend_pid(engine)
    assert len(pings) == 1
    engine.dispose()


def test_a_pooled_connection_killed_while_idle_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url, pool_size=1)
    first = _backend_pid(engine)
    _kill_backend(postgres_url, first)
    monkeypatch.setattr(db, "PING_IDLE_AFTER_S", 0.0)  # it sat idle long enough to be pinged
    assert _backend_pid(engine) != first
    engine.dispose()


def test_a_connection_that_died_a_moment_after_use_fails_as_a_lost_connection_then_is_replaced(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url, pool_size=1)
    first = _backend_pid(engine)
    _kill_backend(postgres_url, first)
    with pytest.raises(DBAPIError) as lost:
        _backend_pid(engine)
    failure = failures.classify(lost.value)
    assert failure is not None and failure.transient and failure.reason == failures.DATABASE_UNAVAILABLE
    assert _backend_pid(engine) != first
    engine.dispose()


def _prepared_statements(engine: Engine, like: str) -> int:
    """How many statements matching `like` the pool's one connection has prepared (asked without a transaction, so
    asking forgets none)."""
    with db.one_statement_transaction(engine) as conn:
        query = text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :like")
        return int(conn.execute(query, {"like": like}).scalar_one())


def test_reads_in_one_snapshot_or_without_a_transaction_keep_their_prepared_statements(postgres_url: str) -> None:
    # psycopg prepares a statement run five times on a connection, and forgets all on a ROLLBACK: reads that end so
    # are planned afresh every time (docs/adr/0029-reads-keep-their-prepared-statements.md).
    engine = make_engine(postgres_url, pool_size=1)
    read = text("SELECT count(*) FROM pg_class WHERE oid > :oid")
    for reading in (db.one_snapshot, db.one_statement_transaction):
        for _ in range(6):
            with reading(engine) as conn:
                conn.execute(read, {"oid": 1}).scalar_one()
        assert _prepared_statements(engine, "%pg_class WHERE oid >%") == 1, reading
    with engine.connect() as conn:  # what a plain read gives back: a rolled-back transaction
        conn.execute(read, {"oid": 1}).scalar_one()
    assert _prepared_statements(engine, "%pg_class WHERE oid >%") == 0
    engine.dispose()


def test_one_snapshot_sees_no_commit_made_after_its_first_statement(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE snapshot_probe (value integer)"))
        conn.execute(text("INSERT INTO snapshot_probe VALUES (1)"))
    read = text("SELECT value FROM snapshot_probe")

    def values_around_a_commit(reading: Callable[[], AbstractContextManager[Connection]]) -> list[int]:
        with reading() as conn:
            seen = [conn.execute(read).scalar_one()]
            with engine.begin() as writer:
                writer.execute(text("UPDATE snapshot_probe SET value = value + 1"))
            seen.append(conn.execute(read).scalar_one())
        return seen

    assert values_around_a_commit(lambda: db.one_snapshot(engine)) == [1, 1]
    assert values_around_a_commit(engine.connect) == [2, 3]  # READ COMMITTED: a snapshot per statement
    assert values_around_a_commit(lambda: db.one_snapshot(engine)) == [3, 3]
    engine.dispose()


def test_one_snapshot_on_sqlite_is_a_transaction(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (value integer)"))
        conn.execute(text("INSERT INTO probe VALUES (1)"))
    with db.one_snapshot(engine) as conn:
        assert conn.in_transaction()
        assert conn.execute(text("SELECT value FROM probe")).scalar_one() == 1
    engine.dispose()
