"""Accounts, channel bindings, openings, consents and closures.

Revision ID: identity_0001
Revises: identity_0000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0001"
down_revision: str | None = "identity_0000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_number", sa.String(16), primary_key=True),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("id_hash", sa.String(64), unique=True),
        sa.Column("person_key", sa.String(64)),
        sa.Column("phone_hash", sa.String(64)),
        sa.Column("record_key_id", sa.String(32)),
        sa.Column("record_blob", sa.LargeBinary),
        sa.Column("opened_via", sa.SmallInteger, nullable=False),
        sa.Column("opened_at", sa.DateTime, nullable=False),
        sa.Column("closed_at", sa.DateTime),
    )
    op.create_index("ix_accounts_person_key", "accounts", ["person_key"])
    op.create_index("ix_accounts_phone_hash", "accounts", ["phone_hash"])
    op.create_table(
        "channel_bindings",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("platform_user_id", sa.String(128), primary_key=True),
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("bound_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_channel_bindings_account_number", "channel_bindings", ["account_number"])
    op.create_table(
        "openings",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), nullable=False),
        sa.Column("created", sa.Boolean, nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("community_centre_id", sa.String(128)),
        sa.Column("staff_id", sa.String(128)),
        sa.Column("opened_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_openings_account_number", "openings", ["account_number"])
    op.create_table(
        "consents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), nullable=False),
        sa.Column("category", sa.SmallInteger, nullable=False),
        sa.Column("action", sa.SmallInteger, nullable=False),
        sa.Column("effective_at", sa.DateTime, nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_consents_account_effective", "consents", ["account_number", "effective_at", "id"])
    op.create_table(
        "closures",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), nullable=False),
        sa.Column("disposition", sa.SmallInteger, nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_index("ix_closures_account_number", "closures", ["account_number"])


def downgrade() -> None:
    for table in ("closures", "consents", "openings", "channel_bindings", "accounts"):
        op.drop_table(table)
