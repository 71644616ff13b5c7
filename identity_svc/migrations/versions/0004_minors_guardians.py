"""Minors and their guardians (issue 17, ADR 0206): the guardian an account for a child under 14 was opened with, when
control passes to the holder (the start of the 14th birthday, China Standard Time) and when that hand-over was
recorded; on each consent, the guardian who gave or withdrew it; and the audit of real-name record corrections
(ADR 0207).

Revision ID: identity_0004
Revises: identity_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0004"
down_revision: str | None = "identity_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("guardian_account_number", sa.String(16)))
    op.add_column("accounts", sa.Column("control_passes_at", sa.DateTime))
    op.add_column("accounts", sa.Column("control_passed_at", sa.DateTime))
    op.create_index("ix_accounts_control_passes_at", "accounts", ["control_passes_at"])
    op.add_column("consents", sa.Column("guardian_account_number", sa.String(16)))
    op.create_table(
        "record_corrections",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), nullable=False),
        sa.Column("fields", sa.String(64), nullable=False),
        sa.Column("caller_service", sa.String(255), nullable=False),
        sa.Column("platform", sa.String(32)),
        sa.Column("staff_id", sa.String(128)),
        sa.Column("corrected_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_record_corrections_account_number", "record_corrections", ["account_number"])


def downgrade() -> None:
    op.drop_index("ix_record_corrections_account_number", table_name="record_corrections")
    op.drop_table("record_corrections")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("guardian_account_number")
    op.drop_index("ix_accounts_control_passes_at", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("control_passed_at")
        batch.drop_column("control_passes_at")
        batch.drop_column("guardian_account_number")
