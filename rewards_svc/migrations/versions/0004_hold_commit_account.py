"""The account a redemption's Hold commits to in the same ledger call (empty: Hold and CommitHold sent apart, as on
every row written before); kept so a retried Hold repeats exactly what was first sent. docs/adr/0303.

Revision ID: rewards_0004
Revises: rewards_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rewards_0004"
down_revision: str | None = "rewards_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("redemptions", sa.Column("hold_commit_account", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_column("hold_commit_account")
