"""Accepted events in the order they were accepted, for followers (ListAcceptedEvents, incentives' habit profiles).

Revision ID: ingest_0005
Revises: ingest_0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ingest_0005"
down_revision: str | None = "ingest_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ingest_events_accepted", "ingest_events", ["accepted_at", "partner_id", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_ingest_events_accepted", table_name="ingest_events")
