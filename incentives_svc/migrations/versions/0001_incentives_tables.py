"""Campaigns, habit profiles, refusals of personalisation, accepted offers and the event cursor.

Revision ID: incentives_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service_kit.db import UtcDateTime, opaque_key

revision: str = "incentives_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incentives_campaigns",
        sa.Column("campaign_id", opaque_key(23), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("behaviour", sa.String(64), nullable=False),
        sa.Column("bonus_points", sa.BigInteger, nullable=False),
        sa.Column("bonus_percent", sa.Integer, nullable=False),
        sa.Column("target_kind", sa.Integer, nullable=False),
        sa.Column("target_days", sa.Integer, nullable=False),
        sa.Column("target_weekdays", sa.Integer, nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime, nullable=False),
        sa.Column("budget_points", sa.BigInteger, nullable=False),
        sa.Column("scope", sa.Integer, nullable=False),
        sa.Column("funded", sa.Boolean, nullable=False),
        sa.Column("paid_points", sa.BigInteger, nullable=False),
        sa.Column("bonuses_paid", sa.BigInteger, nullable=False),
        sa.Column("exhausted", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "incentives_profiles",
        sa.Column("account_number", opaque_key(16), primary_key=True),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "incentives_refusals",
        sa.Column("account_number", opaque_key(16), primary_key=True),
        sa.Column("refused_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "incentives_personalisation_requests",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("profile_deleted", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "incentives_offers",
        sa.Column("offer_id", opaque_key(40), primary_key=True),
        sa.Column("campaign_id", opaque_key(23), nullable=False),
        sa.Column("account_number", opaque_key(16), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("accepted_at", UtcDateTime, nullable=False),
        sa.Column("event_ref", sa.String(200), nullable=False, server_default=""),
        sa.Column("occurred_at", UtcDateTime, nullable=True),
        sa.Column("transfer_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("bonus_points", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_incentives_offers_waiting", "incentives_offers", ["account_number", "state"])
    op.create_index("ix_incentives_offers_state", "incentives_offers", ["state"])
    op.create_table(
        "incentives_cursors",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("page_token", sa.String(512), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "incentives_cursors",
        "incentives_offers",
        "incentives_personalisation_requests",
        "incentives_refusals",
        "incentives_profiles",
        "incentives_campaigns",
    ):
        op.drop_table(table)
