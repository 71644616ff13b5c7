"""Event keys and cap counter keys compare byte by byte on PostgreSQL (`COLLATE "C"`): their order means nothing,
and the database's locale made every index comparison a strcoll call (ADR 0409). SQLite compares bytes already.

Columns: ingest_events.partner_id and event_id (the primary key), ingest_cap_counters.account_number and behaviour
(the primary key, with day). Only the collation changes, so PostgreSQL does not rewrite the tables; it rebuilds the
two primary-key indexes under an ACCESS EXCLUSIVE lock on each table in turn: batches wait. Measured here: about
0.6 s per million events; plan a quiet moment on a large events table.

Revision ID: ingest_0004
Revises: ingest_0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ingest_0004"
down_revision: str | None = "ingest_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, [(column, length)]): one ALTER TABLE per table, so each index is rebuilt once.
COLUMNS = [
    ("ingest_events", [("partner_id", 64), ("event_id", 128)]),
    ("ingest_cap_counters", [("account_number", 16), ("behaviour", 64)]),
]


def upgrade() -> None:
    _set_collation('"C"')


def downgrade() -> None:
    _set_collation('"default"')


def _set_collation(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS:
        changes = ", ".join(
            f"ALTER COLUMN {column} TYPE varchar({length}) COLLATE {collation}" for column, length in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")
