"""Cross-region transfers: one row per transfer, its state, durable decision, held lots and retry schedule.

Revision ID: gateway_0001
Revises: gateway_0000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0001"
down_revision: str | None = "gateway_0000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "xr_transfers",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("caller_id", sa.String(64), nullable=False),
        sa.Column("from_account", sa.String(16), nullable=False),
        sa.Column("to_account", sa.String(16), nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("hold_timeout_ms", sa.BigInteger, nullable=False),
        sa.Column("hold_expires_at", sa.DateTime),
        sa.Column("held_lots", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("lease_until", sa.DateTime),
    )
    op.create_index("ix_xr_transfers_from_account", "xr_transfers", ["from_account"])
    op.create_index("ix_xr_transfers_to_account", "xr_transfers", ["to_account"])
    op.create_index("ix_xr_transfers_state", "xr_transfers", ["state"])


def downgrade() -> None:
    op.drop_table("xr_transfers")
