"""Changes of what a data partner may report (UpdatePartnerBehaviours): one row per change, with the lists before and
after, so the history of a partner's permissions can be traced. A new, empty table; nothing else changes.

Revision ID: ingest_0009
Revises: ingest_0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0009"
down_revision: str | None = "ingest_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_partner_changes",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False, index=True),
        sa.Column("behaviours_before", sa.Text, nullable=False),
        sa.Column("behaviours_after", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_partner_changes")
