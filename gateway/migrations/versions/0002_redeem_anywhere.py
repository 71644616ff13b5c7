"""Redeem anywhere: one row per request (transfer there, redeem, or transfer back); lots a transfer carries over.

Revision ID: gateway_0002
Revises: gateway_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0002"
down_revision: str | None = "gateway_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Lots the destination recreates instead of the ones the source hold took (an unwind returns the original lots).
    op.add_column("xr_transfers", sa.Column("carry_lots", sa.Text))
    op.create_table(
        "xr_redeem_anywhere",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("caller_id", sa.String(64), nullable=False),
        sa.Column("source_account", sa.String(16), nullable=False),
        sa.Column("target_account", sa.String(16), nullable=False),
        sa.Column("reward_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("redemption_id", sa.String(64), nullable=False),
        sa.Column("voucher_codes", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("lease_until", sa.DateTime),
    )
    op.create_index("ix_xr_redeem_anywhere_state", "xr_redeem_anywhere", ["state"])


def downgrade() -> None:
    op.drop_table("xr_redeem_anywhere")
    op.drop_column("xr_transfers", "carry_lots")
