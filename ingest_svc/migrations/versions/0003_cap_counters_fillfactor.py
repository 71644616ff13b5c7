"""Cap counters keep 30% of each page free on PostgreSQL, so a batch's update of a counter is HOT (ADR 0407).

The table is not rewritten: SET (fillfactor) shapes the pages written from now on, and the counters that are still
updated are today's (and, for late events, the last seven days'), which land on new pages. Existing pages are never
repacked: rewriting them (VACUUM FULL, CLUSTER) would lock the table against every batch for minutes on millions
of rows, to make room on pages that are no longer written to. Nothing to do on SQLite.

Revision ID: ingest_0003
Revises: ingest_0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ingest_0003"
down_revision: str | None = "ingest_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the table definition says (store.cap_counters); the ADR says why this number.
CAP_COUNTERS_FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE ingest_cap_counters SET (fillfactor = {CAP_COUNTERS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ingest_cap_counters RESET (fillfactor)")
