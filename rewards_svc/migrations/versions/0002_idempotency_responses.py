"""Idempotency keys keep the first response, so a retried request returns exactly what the first call returned.

Revision ID: rewards_0002
Revises: rewards_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rewards_0002"
down_revision: str | None = "rewards_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("response", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("response")
