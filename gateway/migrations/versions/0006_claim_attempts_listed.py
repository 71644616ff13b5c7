"""Attempts that claimed ahead of recording, one row each, for the claimant's sweep of claims an attempt left behind
(docs/adr/0416-orphan-claims-sweep.md): the attempt's fingerprints and days as one value, so that listing a region's
old attempts reads one row per credit batch (about 500 claims) through a small index, and no index is added to the
claims themselves (a billion rows a day).

Revision ID: gateway_0006
Revises: gateway_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0006"
down_revision: str | None = "gateway_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_claim_attempts",
        sa.Column("region_code", sa.String(6), primary_key=True),
        sa.Column("attempt_id", sa.String(64), primary_key=True),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        sa.Column("fingerprints", sa.LargeBinary, nullable=False),
        sa.Column("days", sa.Text, nullable=False),
        sa.Column("recorded", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_gateway_claim_attempts_listing", "gateway_claim_attempts", ["region_code", "claimed_at", "attempt_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_claim_attempts_listing", table_name="gateway_claim_attempts")
    op.drop_table("gateway_claim_attempts")
