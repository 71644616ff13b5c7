"""Closing campaigns: the remainder of a finished campaign's budget, decided once, and whether it went back.

Revision ID: incentives_0002
Revises: incentives_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "incentives_0002"
down_revision: str | None = "incentives_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incentives_campaigns") as batch:
        batch.add_column(sa.Column("returning_points", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("returned", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("incentives_campaigns") as batch:
        batch.drop_column("returned")
        batch.drop_column("returning_points")
