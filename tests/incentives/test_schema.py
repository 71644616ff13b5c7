"""incentives_svc's migrations build exactly the tables its store describes (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from incentives_svc.store import metadata
from service_kit.db import make_engine, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    migrated = make_engine(database_url)
    migrate("incentives_svc", migrated)
    yield migrated
    migrated.dispose()


def _not_a_version_table(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("alembic_version"))


def test_migrations_build_the_tables_the_store_describes(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_a_version_table})
        assert compare_metadata(context, metadata) == []
