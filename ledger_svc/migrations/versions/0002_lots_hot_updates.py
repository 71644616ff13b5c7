"""Room for HOT updates: a credit to an existing lot or account writes no index entry (ADR 0104).

Lots keep 30% and accounts 50% of each page free on PostgreSQL, and the expiring-lots index is partial on a generated
`has_points` flag instead of on `remaining_points` (a column in an index predicate blocks HOT updates of it).

Revision ID: ledger_0002
Revises: ledger_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0002"
down_revision: str | None = "ledger_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the table definitions say (store/tables.py); the ADR says why these numbers.
LOTS_FILLFACTOR = 70
ACCOUNTS_FILLFACTOR = 50


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # Set before the column is added: adding a stored column rewrites lots, which then leaves the room.
        op.execute(f"ALTER TABLE lots SET (fillfactor = {LOTS_FILLFACTOR})")
        op.execute(f"ALTER TABLE accounts SET (fillfactor = {ACCOUNTS_FILLFACTOR})")
    # SQLite's ALTER TABLE adds only a virtual generated column (the same value, computed on read).
    op.add_column(
        "lots",
        sa.Column("has_points", sa.Boolean, sa.Computed("remaining_points > 0", persisted=postgresql), nullable=False),
    )
    op.drop_index("ix_lots_expiring", table_name="lots")
    _create_expiring_index(postgresql_where="has_points", sqlite_where="has_points = 1")


def downgrade() -> None:
    op.drop_index("ix_lots_expiring", table_name="lots")
    _create_expiring_index(postgresql_where="remaining_points > 0", sqlite_where="remaining_points > 0")
    op.drop_column("lots", "has_points")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE lots RESET (fillfactor)")
        op.execute("ALTER TABLE accounts RESET (fillfactor)")


def _create_expiring_index(postgresql_where: str, sqlite_where: str) -> None:
    op.create_index(
        "ix_lots_expiring",
        "lots",
        ["expires_at_us"],
        postgresql_where=sa.text(postgresql_where),
        sqlite_where=sa.text(sqlite_where),
    )
