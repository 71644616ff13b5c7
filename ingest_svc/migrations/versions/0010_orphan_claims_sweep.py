"""Where the sweep of claims left by attempts that never recorded has read up to in the gateway's list of this
region's attempts (docs/adr/0416-orphan-claims-sweep.md): one row, its page token. A new, empty table; nothing else
changes (an attempt the sweep gives up is an ABANDONED row of ingest_credit_batches, whose state is free text).

Revision ID: ingest_0010
Revises: ingest_0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0010"
down_revision: str | None = "ingest_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_claim_sweep",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("page_token", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_claim_sweep")
