"""The holder of each event recorded DUPLICATE_ACTIVITY (issue 16): who claimed the activity first, for ExplainScore.
A new, empty table; nothing else changes.

Revision ID: ingest_0006
Revises: ingest_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service_kit.db import opaque_key

revision: str = "ingest_0006"
down_revision: str | None = "ingest_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_activity_holders",
        sa.Column("partner_id", opaque_key(64), primary_key=True),
        sa.Column("event_id", opaque_key(128), primary_key=True),
        sa.Column("holder_region", sa.String(6), nullable=False),
        sa.Column("holder_partner", sa.String(64), nullable=False),
        sa.Column("holder_event_id", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_activity_holders")
