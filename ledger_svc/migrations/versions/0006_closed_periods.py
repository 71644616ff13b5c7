"""Closed settlement periods: per month, the last journal block it includes and its stored figures (ADR 0110).

Revision ID: ledger_0006
Revises: ledger_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0006"
down_revision: str | None = "ledger_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "closed_periods",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("last_block_no", sa.BigInteger, nullable=False),
        sa.Column("closed_at_us", sa.BigInteger, nullable=False),
        sa.Column("figures_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("closed_periods")
