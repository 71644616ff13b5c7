"""The body of every service's alembic env.py: run migrations on the connection db.migrate() hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine


def run_migrations(target_metadata: MetaData) -> None:
    config = context.config
    version_table = config.attributes.get("version_table", "alembic_version")
    connection = config.attributes.get("connection")
    if connection is None:
        # Invoked from the alembic command line: connect from the URL in the config.
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as own_connection:
            _run(own_connection, target_metadata, version_table)
            own_connection.commit()
        return
    _run(connection, target_metadata, version_table)


def _run(connection: Connection, target_metadata: MetaData, version_table: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rewrites the table instead.
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
