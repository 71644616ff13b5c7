"""Reminders: the residents' preference and the outbox of notices to deliver (ADR 0113).

Revision ID: identity_0003
Revises: identity_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0003"
down_revision: str | None = "identity_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reminder_preferences",
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), primary_key=True),
        sa.Column("reminders_off", sa.Boolean, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reminder_outbox",
        sa.Column("notice_key", sa.String(200), primary_key=True),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("expires_on", sa.String(10), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("queued_at_us", sa.BigInteger, nullable=False),
        sa.Column("delivered_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_reminder_outbox_due", "reminder_outbox", ["state", "next_attempt_at_us"])
    op.create_index("ix_reminder_outbox_state_queued", "reminder_outbox", ["state", "queued_at_us", "notice_key"])


def downgrade() -> None:
    op.drop_table("reminder_outbox")
    op.drop_table("reminder_preferences")
