"""An index of the events by account, for ListAccountEvents (the person's copy of their data, ADR 0208).

It costs each inserted event one more index entry. Built in the migration's transaction (the migrations run in one),
so PostgreSQL blocks writes to ingest_events while it builds: on a large table, build it first by hand with CREATE
INDEX CONCURRENTLY ix_ingest_events_account ON ingest_events (account_number, partner_id, event_id), and this
migration then finds it.

Revision ID: ingest_0007
Revises: ingest_0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ingest_0007"
down_revision: str | None = "ingest_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["account_number", "partner_id", "event_id"]


def upgrade() -> None:
    op.create_index("ix_ingest_events_account", "ingest_events", COLUMNS, if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_ingest_events_account", "ingest_events", if_exists=True)
