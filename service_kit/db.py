"""SQLAlchemy engines for PostgreSQL and SQLite alike, and alembic migrations per service."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import Connection, DateTime, Dialect, Engine, String, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

from service_kit import revisions

# alembic and the ORM are imported where they are used: a start on a schema at head needs neither, and their imports
# were a good part of every service process's start-up CPU (docs/adr/0027-test-suite-time-cheaper-process-starts.md).
if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import Session, sessionmaker

# One fixed key per service for PostgreSQL's advisory lock, so replicas starting together migrate one at a time.
_MIGRATION_LOCK_BASE = 0x43415242  # "CARB"


def opaque_key(length: int) -> String:
    """An identifier whose order means nothing (ids, account numbers, codes): compared byte by byte (`COLLATE "C"`,
    memcmp) on PostgreSQL instead of through the database's locale (strcoll) in every index probe and insert. SQLite
    compares bytes already. A statement that orders or ranges over such a column gets byte order too. ADRs 0107 and
    0409."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def naive_utc(value: datetime) -> datetime:
    """How a moment is stored: naive UTC. For statements that bind moments without UtcDateTime (arrays of them)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: store timezone-aware values only")
    return value.astimezone(UTC).replace(tzinfo=None)


class UtcDateTime(TypeDecorator[datetime]):
    """A moment stored as naive UTC (SQLite keeps no zone) and always read back timezone-aware.

    Refuses naive datetimes on the way in: a naive value is a bug (whose local time?), not something to guess.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def normalize_url(url: str) -> str:
    """postgres:// and postgresql:// become postgresql+psycopg:// (psycopg 3 is the driver we ship)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN so two writers never deadlock upgrading read locks (SQLAlchemy docs recipe).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """An engine for a service's database. On PostgreSQL it opens at most `pool_size` connections, no overflow: what a
    process may hold is then its pool size, and PostgreSQL's connection limit is a sum of pool sizes one can add up
    (a thread holds one connection at a time; one more waits for a free one)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # sqlalchemy.create_engine looked up at the call: the SQLAlchemy instrumentation (service_kit/telemetry.py)
        # wraps it when telemetry is on, after this module was imported.
        engine = sqlalchemy.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    engine = sqlalchemy.create_engine(url, echo=echo, pool_size=pool_size, max_overflow=0)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


# A pooled connection is pinged before use only when it sat in the pool at least this long (ADR 0624). What kills
# connections in the pool (a server restart or failover, an idle timeout in a proxy) leaves them idle far longer; one
# given back a moment ago was working then, and a busy process then pays no round trip per checkout (pool_pre_ping
# cost ~9 per cross-region transfer). A connection that dies anyway fails its statement as a lost connection:
# UNAVAILABLE DATABASE_UNAVAILABLE, which the kit retries for idempotent calls (service_kit/failures.py), and
# SQLAlchemy then replaces every connection of the pool opened before.
PING_IDLE_AFTER_S = 1.0
_CHECKED_IN_AT = "carbon_checked_in_at"


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _ping_if_idle(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    def ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)  # unset on a connection just opened
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_IDLE_AFTER_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out another (a new one when the pool has none).
            raise sqlalchemy.exc.DisconnectionError(str(error)) from error

    return ping


@contextmanager
def one_statement_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements are each their own transaction on PostgreSQL (autocommit): no BEGIN and no
    COMMIT or ROLLBACK, each a round trip of its own in psycopg. For a write PostgreSQL makes as one statement, and for
    reads at READ COMMITTED, where every statement takes its own snapshot anyway. Ending no transaction, it also
    keeps the connection's prepared statements (see `one_snapshot`). SQLite gets a transaction."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


@contextmanager
def one_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection for a read of several statements that must agree: one transaction on PostgreSQL at REPEATABLE
    READ, where every statement sees the snapshot the first one took (at READ COMMITTED each takes its own, so a
    commit between two of them shows half of it). It ends in COMMIT, not the ROLLBACK a plain `engine.connect()`
    ends in: psycopg forgets every prepared statement of the connection on a ROLLBACK, so a connection whose reads
    end so plans each statement afresh every time (docs/adr/0029-reads-keep-their-prepared-statements.md). A read
    writes nothing, so it never fails to serialize. SQLite gets a transaction (one snapshot already)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


def session_factory(engine: Engine) -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(service_package: str, engine: Engine) -> Config:
    """Alembic configured in code: migrations live in <service_package>/migrations, one version table per service."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", f"{service_package}:migrations")
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["version_table"] = revisions.version_table(service_package)
    return config


# Builds an empty database's schema as the migrations would, on the connection given, and returns True; or returns
# False and leaves the database to alembic. None in production: every database is migrated by alembic. The tests
# set one that replays a migrated template (tests/schema_templates.py, docs/adr/0009-test-databases.md).
SchemaCopier = Callable[[str, Connection], bool]
_schema_copier: SchemaCopier | None = None


def copy_empty_schemas_with(copier: SchemaCopier | None) -> SchemaCopier | None:
    """Makes `migrate` offer each database to `copier` first; returns the copier it replaces."""
    global _schema_copier
    replaced, _schema_copier = _schema_copier, copier
    return replaced


def migrate(service_package: str, engine: Engine) -> None:
    """Brings the service's schema to head. Idempotent; safe when several replicas start at once on PostgreSQL."""
    with engine.connect() as connection:
        lock_key = _MIGRATION_LOCK_BASE + sum(service_package.encode())
        if not is_sqlite(engine):
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key})
        try:
            # At head (every start but a database's first): alembic would change nothing, so it is not imported.
            if not revisions.at_head(service_package, connection):
                copier = _schema_copier
                if copier is None or not copier(service_package, connection):
                    upgrade(service_package, connection)
            connection.commit()
        finally:
            if not is_sqlite(engine):
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
                connection.commit()


def upgrade(service_package: str, connection: Connection, revision: str = "head") -> None:
    """Runs the service's alembic migrations up to `revision` on the connection (the caller commits)."""
    from alembic import command

    config = alembic_config(service_package, connection.engine)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
