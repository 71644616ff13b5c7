"""Tests migrate each service once per dialect, then build every empty database by replaying that migration.

Alembic costs tens of milliseconds of CPU per service per database (loading the revision scripts, running them,
reflecting), and hundreds of tests each start from an empty database. `SchemaTemplates` migrates a template database
per service and dialect the first time one is asked for, recording every statement alembic sent to the driver, and
from then on answers `service_kit.db.migrate` for an empty database by sending the same statements again on its
connection: the same DDL in the same order, so the same schema (tests/service_kit/test_schema_templates.py compares
them). A database that is not empty (a migration test that ran alembic to some older revision first) is left to
alembic. docs/adr/0009-test-databases.md.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, event

from service_kit import db

# Not replayed: statements that only read (reflection, the version check, a data migration's SELECT finding nothing
# in an empty database), which would change nothing, and the embedded engine's BEGIN IMMEDIATE (service_kit.db),
# which the connection being built has sent already.
_NOT_REPLAYED = ("SELECT", "PRAGMA", "BEGIN")


class Statement(NamedTuple):
    sql: str
    parameters: Any
    many: bool


def is_empty(connection: Connection) -> bool:
    """No table, view, index or sequence in the connection's schema (SQLite: in its database file)."""
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_master"
    else:
        query = (
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema()"
        )
    return bool(connection.exec_driver_sql(query).scalar_one() == 0)


def record_migration(service_package: str, engine: Engine) -> list[Statement]:
    """Migrates the engine's empty database with alembic and returns the statements that changed it, in order."""
    recorded: list[Statement] = []

    def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, many: bool) -> None:
        if not sql.lstrip().upper().startswith(_NOT_REPLAYED):
            recorded.append(Statement(sql, parameters, many))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as connection:
            db.upgrade(service_package, connection)
            connection.commit()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return recorded


def replay(connection: Connection, statements: Sequence[Statement]) -> None:
    """Sends the recorded statements to the driver in their order; the caller commits.

    On PostgreSQL a run of statements without parameters (nearly all: the DDL) goes as one string, one round trip,
    which psycopg sends by the simple query protocol; a migration of 30-50 statements replays in about two thirds of
    the time it took one statement at a time, and hundreds of tests each replay one or more."""
    batched = connection.dialect.name == "postgresql"
    cursor = connection.connection.cursor()
    try:
        plain: list[str] = []
        for statement in statements:
            if batched and not statement.parameters and not statement.many:
                # Sent with an empty mapping, the driver read `%%` as a literal `%`; sent without one, it reads the
                # text as it is, so the escape is undone here.
                plain.append(statement.sql if statement.parameters is None else statement.sql.replace("%%", "%"))
                continue
            if plain:
                cursor.execute(";\n".join(plain))
                plain.clear()
            if statement.many:
                cursor.executemany(statement.sql, statement.parameters)
            else:
                cursor.execute(statement.sql, statement.parameters)
        if plain:
            cursor.execute(";\n".join(plain))
    finally:
        cursor.close()


class SchemaTemplates:
    """The copier the tests hand to `service_kit.db.copy_empty_schemas_with`: one template per service and dialect,
    made on first use in `workdir` (SQLite) or in a schema of its own on the same PostgreSQL database."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._templates: dict[tuple[str, str], list[Statement]] = {}
        self._postgres_schemas: list[tuple[str, str]] = []  # (server URL, schema) to drop at the end
        self._lock = threading.Lock()  # in-process servers of several threads may migrate at once

    def __call__(self, service_package: str, connection: Connection) -> bool:
        if not is_empty(connection):
            return False
        replay(connection, self.statements(service_package, connection.engine))
        return True

    def statements(self, service_package: str, like: Engine) -> list[Statement]:
        """The template's recorded migration, made now if this is the first database of its kind."""
        key = (service_package, like.dialect.name)
        with self._lock:
            if key not in self._templates:
                self._templates[key] = self._migrate_template(service_package, like)
            return self._templates[key]

    def _migrate_template(self, service_package: str, like: Engine) -> list[Statement]:
        if like.dialect.name == "sqlite":
            path = self._workdir / f"{service_package}-template.db"
            engine = db.make_engine(f"sqlite:///{path}")
        else:
            engine = db.make_engine(self._new_postgres_schema(like, service_package), pool_size=1)
        try:
            return record_migration(service_package, engine)
        finally:
            engine.dispose()

    def _new_postgres_schema(self, like: Engine, service_package: str) -> str:
        """A new, empty schema on the same database as `like`, as a URL whose search_path is that schema."""
        schema = f"template_{service_package}_{uuid.uuid4().hex[:8]}"
        server = like.url.set(query={key: value for key, value in like.url.query.items() if key != "options"})
        server_url = server.render_as_string(hide_password=False)
        _execute_alone(server_url, f'CREATE SCHEMA "{schema}"')
        self._postgres_schemas.append((server_url, schema))
        return server.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)

    def drop(self) -> None:
        """Drops the PostgreSQL template schemas (the SQLite files go with the session's temporary folder)."""
        for server_url, schema in self._postgres_schemas:
            _execute_alone(server_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._postgres_schemas.clear()


def _execute_alone(url: str, sql: str) -> None:
    """One statement on a connection of its own (never one of the pool whose database is being migrated)."""
    engine = db.make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(sql)
            connection.commit()
    finally:
        engine.dispose()


def migrated_here(service_package: str, database_url: str) -> None:
    """Migrates a service process's database here (from the session's template) before the test starts the process:
    the process then finds its schema at head and never imports alembic, as on any start but a database's first
    (docs/adr/0027-test-suite-time-cheaper-process-starts.md). The embedded-system tests still start every service on
    empty databases."""
    engine = db.make_engine(database_url, pool_size=1)
    try:
        db.migrate(service_package, engine)
    finally:
        engine.dispose()
