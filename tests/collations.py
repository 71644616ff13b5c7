"""Collations of text columns, as the table definitions declare them for PostgreSQL and as a migrated database has
them (ADRs 0107 and 0409: opaque keys compare bytes)."""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, String, text


def declared_postgresql_collations(metadata: MetaData) -> dict[tuple[str, str], str | None]:
    declared: dict[tuple[str, str], str | None] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            kind = column.type._variant_mapping.get("postgresql", column.type)
            if isinstance(kind, String):
                declared[(table.name, column.name)] = kind.collation
    return declared


def column_collations(conn: Connection) -> dict[tuple[str, str], str | None]:
    """(table, column) -> collation of the current schema's text columns (None: the database's default)."""
    rows = conn.execute(
        text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name NOT LIKE 'alembic%'"
            " AND data_type IN ('character varying', 'text')"
        )
    )
    return {(table, column): collation for table, column, collation in rows}
