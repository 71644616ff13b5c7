"""A database built from a migrated template is the database alembic builds: for every service, on both dialects.

The tests' `migrate` replays a template's recorded migration on every empty database (tests/schema_templates.py,
docs/adr/0009-test-databases.md); these tests compare the two, through SQLAlchemy's inspection, the database's own
catalog text and the rows the migrations seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.sql import ClauseElement

from service_kit import db
from tests.schema_templates import SchemaTemplates, is_empty

SERVICES = ["identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc", "gateway", "ops_api"]


def describe(engine: Engine) -> dict[str, Any]:
    """Everything a schema is made of, as plain values, with no trace of the schema's own name."""
    inspector = inspect(engine)
    tables = sorted(inspector.get_table_names())
    description: dict[str, Any] = {
        name: {
            "columns": [
                {**column, "type": column["type"].compile(dialect=engine.dialect)}
                for column in inspector.get_columns(name)
            ],
            "primary key": inspector.get_pk_constraint(name),
            "foreign keys": inspector.get_foreign_keys(name),
            "indexes": sorted(inspector.get_indexes(name), key=lambda index: str(index["name"])),
            "unique": inspector.get_unique_constraints(name),
            "checks": inspector.get_check_constraints(name),
            "options": inspector.get_table_options(name),
            "comment": inspector.get_table_comment(name) if engine.dialect.supports_comments else None,
        }
        for name in tables
    }
    with engine.connect() as connection:
        description["rows"] = {
            name: sorted(map(repr, connection.execute(text(f'SELECT * FROM "{name}"')).all())) for name in tables
        }
        description["catalog"] = _catalog(connection)
    plain: dict[str, Any] = _plain(description)
    return plain


def _plain(value: Any) -> Any:
    """SQL expressions (a partial index's WHERE) compare by identity; their text compares by value."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, ClauseElement):
        return str(value)
    return value


def _catalog(connection: Any) -> list[tuple[Any, ...]]:
    """The database's own text for what it stores: every object's DDL (SQLite), or every index, constraint,
    sequence and storage option in the current schema (PostgreSQL)."""
    if connection.dialect.name == "sqlite":
        return list(map(tuple, connection.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master")).all()))
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    queries = [
        "SELECT indexname, replace(indexdef, :schema || '.', '') FROM pg_indexes WHERE schemaname = :schema",
        "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = CAST(:schema AS regnamespace)",
        "SELECT relname, relkind, reloptions::text FROM pg_class WHERE relnamespace = CAST(:schema AS regnamespace)",
        "SELECT sequencename, data_type::text, start_value, increment_by, last_value FROM pg_sequences"
        " WHERE schemaname = :schema",
        "SELECT table_name, column_name, collation_name, column_default, is_nullable, data_type"
        " FROM information_schema.columns WHERE table_schema = :schema",
    ]
    rows: list[tuple[Any, ...]] = []
    for query in queries:
        rows.extend(tuple(row) for row in connection.execute(text(query), {"schema": schema}).all())
    return sorted(rows, key=repr)


@pytest.fixture
def empty_database(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Empty databases of the dialect under test, as engines; disposed afterwards."""
    engines: list[Engine] = []
    count = iter(range(1_000))

    def make() -> Engine:
        if database_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'empty-{next(count)}.db'}"
        else:
            url = request.getfixturevalue("fresh_postgres_url")()
        engines.append(db.make_engine(url, pool_size=2))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_a_database_built_from_the_template_is_the_one_alembic_builds(
    service: str, empty_database: Callable[[], Engine], schema_templates: SchemaTemplates
) -> None:
    by_alembic, by_template = empty_database(), empty_database()
    replaced = db.copy_empty_schemas_with(None)
    try:
        db.migrate(service, by_alembic)
    finally:
        db.copy_empty_schemas_with(replaced)

    db.migrate(service, by_template)

    assert schema_templates.statements(service, by_template), "the template recorded its migration"
    assert describe(by_template) == describe(by_alembic)


def test_a_database_that_is_not_empty_is_left_to_alembic(empty_database: Callable[[], Engine]) -> None:
    engine = empty_database()
    with engine.connect() as connection:
        db.upgrade("ingest_svc", connection, "ingest_0002")
        connection.commit()

    db.migrate("ingest_svc", engine)

    with engine.connect() as connection:
        assert not is_empty(connection)
        version = connection.execute(text("SELECT version_num FROM alembic_version_ingest_svc")).scalar_one()
    assert version == "ingest_0010"


def test_migrating_again_changes_nothing(empty_database: Callable[[], Engine]) -> None:
    engine = empty_database()
    db.migrate("ledger_svc", engine)
    before = describe(engine)

    db.migrate("ledger_svc", engine)

    assert describe(engine) == before
