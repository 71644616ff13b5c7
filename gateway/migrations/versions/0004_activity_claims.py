"""Activity claims, partitioned by the activity's day on PostgreSQL, and the conflicts refused claims leave (issue 16,
docs/adr/0606-activity-claims-at-the-gateway.md). Day partitions are made by the gateway before a day's first claim.

Revision ID: gateway_0004
Revises: gateway_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0004"
down_revision: str | None = "gateway_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLAIM_COLUMNS = """
    day date NOT NULL,
    fingerprint bytea NOT NULL,
    key_id varchar(32) NOT NULL,
    region_code varchar(6) NOT NULL,
    partner_id varchar(64) NOT NULL,
    event_id varchar(128) NOT NULL,
    claimed_at timestamp without time zone NOT NULL,
    PRIMARY KEY (day, fingerprint)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE TABLE gateway_activity_claims ({_CLAIM_COLUMNS}) PARTITION BY RANGE (day)")
    else:
        op.create_table(
            "gateway_activity_claims",
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("fingerprint", sa.LargeBinary(32), primary_key=True),
            sa.Column("key_id", sa.String(32), nullable=False),
            sa.Column("region_code", sa.String(6), nullable=False),
            sa.Column("partner_id", sa.String(64), nullable=False),
            sa.Column("event_id", sa.String(128), nullable=False),
            sa.Column("claimed_at", sa.DateTime, nullable=False),
        )
    op.create_table(
        "gateway_claim_conflicts",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("fingerprint", sa.LargeBinary(32), primary_key=True),
        sa.Column("claimant_region", sa.String(6), primary_key=True),
        sa.Column("claimant_partner", sa.String(64), primary_key=True),
        sa.Column("claimant_event_id", sa.String(128), primary_key=True),
        sa.Column("holder_region", sa.String(6), nullable=False),
        sa.Column("holder_partner", sa.String(64), nullable=False),
        sa.Column("holder_event_id", sa.String(128), nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_claim_conflicts")
    op.drop_table("gateway_activity_claims")
