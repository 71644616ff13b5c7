"""What rewards sent the ledger, kept so a retry repeats it exactly: a voucher's refund reason, a redemption's hold
timeout (both are part of the ledger's idempotency fingerprint); and until when an unwound redemption's hold is
watched for a late landing. docs/adr/0302.

Revision ID: rewards_0003
Revises: rewards_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service_kit.db import UtcDateTime

revision: str = "rewards_0003"
down_revision: str | None = "rewards_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty / 0 on rows written before: what was sent then is unknown, and the ledger's own record decides.
    op.add_column("vouchers", sa.Column("refund_reason", sa.String(256), nullable=False, server_default=""))
    op.add_column("redemptions", sa.Column("hold_timeout_s", sa.Integer, nullable=False, server_default="0"))
    op.add_column("redemptions", sa.Column("hold_watch_until", UtcDateTime, nullable=True))
    op.create_index("ix_redemptions_hold_watch_until", "redemptions", ["hold_watch_until"])


def downgrade() -> None:
    with op.batch_alter_table("vouchers") as batch:
        batch.drop_column("refund_reason")
    op.drop_index("ix_redemptions_hold_watch_until", "redemptions")
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_column("hold_watch_until")
        batch.drop_column("hold_timeout_s")
