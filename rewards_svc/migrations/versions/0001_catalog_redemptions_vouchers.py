"""Catalog, redemptions, vouchers, charity projects and impact, donations, idempotency keys.

Revision ID: rewards_0001
Revises: rewards_0000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service_kit.db import UtcDateTime

revision: str = "rewards_0001"
down_revision: str | None = "rewards_0000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rewards",
        sa.Column("reward_id", sa.String(64), primary_key=True),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("price_points", sa.BigInteger, nullable=False),
        sa.Column("face_value_cents", sa.BigInteger, nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("region_codes", sa.String(700), nullable=False),
        sa.Column("stock", sa.BigInteger, nullable=False),
        sa.Column("limit_per_day", sa.Integer, nullable=False),
        sa.Column("limit_per_month", sa.Integer, nullable=False),
        sa.Column("limit_lifetime", sa.Integer, nullable=False),
        sa.Column("available_from", UtcDateTime, nullable=True),
        sa.Column("available_until", UtcDateTime, nullable=True),
        sa.Column("voucher_lifetime_days", sa.Integer, nullable=False),
        sa.Column("divisible", sa.Boolean, nullable=False),
        sa.Column("retired", sa.Boolean, nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "redemptions",
        sa.Column("redemption_id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("reward_id", sa.String(64), sa.ForeignKey("rewards.reward_id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("price_points", sa.BigInteger, nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("limit_units", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("hold_id", sa.String(80), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_redemptions_account_reward", "redemptions", ["account_number", "reward_id", "created_at"])
    op.create_index("ix_redemptions_state", "redemptions", ["state"])
    op.create_table(
        "vouchers",
        sa.Column(
            "voucher_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("redemption_id", sa.String(36), sa.ForeignKey("redemptions.redemption_id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("reward_id", sa.String(64), nullable=False),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("price_points", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("issued_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
        sa.Column("merchant_id", sa.String(128), nullable=False),
        sa.Column("cancelled_at", UtcDateTime, nullable=True),
        sa.Column("refund_id", sa.String(128), nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
    )
    op.create_index("ux_vouchers_redemption_seq", "vouchers", ["redemption_id", "seq"], unique=True)
    op.create_index("ix_vouchers_account", "vouchers", ["account_number", "voucher_id"])
    op.create_index("ix_vouchers_state", "vouchers", ["state"])
    op.create_table(
        "charity_projects",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("points_per_unit", sa.BigInteger, nullable=False),
        sa.Column("impact_unit", sa.String(32), nullable=False),
    )
    op.create_table(
        "charity_impact",
        sa.Column("project_id", sa.String(64), sa.ForeignKey("charity_projects.project_id"), primary_key=True),
        sa.Column("region_code", sa.String(6), primary_key=True),
        sa.Column("units", sa.BigInteger, nullable=False),
        sa.Column("donated_points", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "donations",
        sa.Column("donation_id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("charity_projects.project_id"), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("units", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_donations_state", "donations", ["state"])
    op.create_table(
        "idempotency_keys",
        sa.Column("operation", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result_ref", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "donations", "charity_impact", "charity_projects", "vouchers", "redemptions"):
        op.drop_table(table)
    op.drop_table("rewards")
