"""Baseline: staff users, tokens, the audit log and four-eyes adjustment requests.

Revision ID: ops_api_0000
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service_kit.db import UtcDateTime

revision: str = "ops_api_0000"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_staff_users",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False, server_default=""),
        sa.Column("centre_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("active", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
    )
    op.create_table(
        "ops_staff_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("ops_staff_users.user_id"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False, server_default=""),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_ops_staff_tokens_user_id", "ops_staff_tokens", ["user_id"])
    op.create_table(
        "ops_audit_log",
        sa.Column("audit_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("details_json", sa.Text, nullable=False, server_default="{}"),
        sa.UniqueConstraint("actor", "request_id", "action", name="uq_ops_audit_request"),
    )
    op.create_index("ix_ops_audit_log_at", "ops_audit_log", ["at"])
    op.create_table(
        "ops_adjustments",
        sa.Column("adjustment_id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(32), nullable=False, server_default=""),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("transfer_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("failure_reason", sa.String(64), nullable=False, server_default=""),
        sa.UniqueConstraint("requested_by", "request_id", name="uq_ops_adjustment_request"),
    )
    op.create_index("ix_ops_adjustments_account_number", "ops_adjustments", ["account_number"])
    op.create_index("ix_ops_adjustments_state", "ops_adjustments", ["state"])


def downgrade() -> None:
    op.drop_table("ops_adjustments")
    op.drop_table("ops_audit_log")
    op.drop_table("ops_staff_tokens")
    op.drop_table("ops_staff_users")
