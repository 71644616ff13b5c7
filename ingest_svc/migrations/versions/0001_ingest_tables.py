"""Catalog, rule versions, partners and keys, accepted events, cap counters, daily statistics.

Revision ID: ingest_0001
Revises: ingest_0000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0001"
down_revision: str | None = "ingest_0000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_behaviours",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False, server_default=""),
        sa.Column("tiered", sa.Boolean, nullable=False, server_default="0"),
    )
    op.create_table(
        "ingest_rule_versions",
        sa.Column("rule_version_id", sa.String(128), primary_key=True),
        sa.Column("behaviour", sa.String(64), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False, server_default=""),
        sa.Column("effective_from", TZ, nullable=False),
        sa.Column("points_per_unit", sa.BigInteger, nullable=False),
        sa.Column("co2e_milligrams_per_unit", sa.BigInteger, nullable=False),
        sa.Column("co2e_unit", sa.String(200), nullable=False),
        sa.Column("co2e_source", sa.Text, nullable=False),
        sa.Column("co2e_derivation", sa.Text, nullable=False, server_default=""),
        sa.Column("daily_cap_milli", sa.BigInteger, nullable=False),
        sa.Column("max_quantity_milli", sa.BigInteger, nullable=False),
        sa.Column("tier_points", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "ingest_partners",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("allowed_behaviours", sa.Text, nullable=False),
        sa.Column("allowed_regions", sa.Text, nullable=False),
        sa.Column("rate_limit_per_second", sa.Integer, nullable=False),
        sa.Column("active_key_id", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "ingest_partner_keys",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("secret_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("valid_until", TZ, nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True, unique=True),
    )
    op.create_table(
        "ingest_events",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("batch_id", sa.String(128), nullable=False),
        sa.Column("account_number", sa.String(16), nullable=False),
        sa.Column("behaviour", sa.String(64), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("quantity_milli", sa.BigInteger, nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("evidence_ref", sa.String(512), nullable=False),
        sa.Column("rule_version_id", sa.String(128), nullable=False),
        sa.Column("counted_before_milli", sa.BigInteger, nullable=False),
        sa.Column("counted_milli", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("co2e_grams", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("transfer_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accepted_at", TZ, nullable=False),
    )
    op.create_index("ix_ingest_events_pending", "ingest_events", ["status", "accepted_at"])
    op.create_table(
        "ingest_cap_counters",
        sa.Column("account_number", sa.String(16), primary_key=True),
        sa.Column("behaviour", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("counted_milli", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ingest_daily_stats",
        sa.Column("region_code", sa.String(6), primary_key=True),
        sa.Column("behaviour", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("co2e_grams", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "ingest_daily_stats",
        "ingest_cap_counters",
        "ingest_events",
        "ingest_partner_keys",
        "ingest_partners",
        "ingest_rule_versions",
        "ingest_behaviours",
    ):
        op.drop_table(table)
