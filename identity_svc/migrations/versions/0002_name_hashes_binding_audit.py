"""The name hash on accounts, the binding audit and the resident authorizations issued (ADRs 0204, 0205).

The name hashes of existing accounts stay NULL here: only the service holds the keys, and it fills a NULL (or another
key's) hash from the sealed record when it first needs it, so no row is ever unusable.

Revision ID: identity_0002
Revises: identity_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0002"
down_revision: str | None = "identity_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("accounts", sa.Column("name_hash", sa.String(64)))
    op.add_column("accounts", sa.Column("name_hash_key", sa.String(16)))
    op.create_table(
        "binding_events",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("channel", sa.SmallInteger, nullable=False),
        sa.Column("platform", sa.String(32)),
        sa.Column("platform_user_id", sa.String(128)),
        sa.Column("community_centre_id", sa.String(128)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("caller_service", sa.String(255)),
        sa.Column("caller", sa.String(128)),
        sa.Column("caller_platform", sa.String(32)),
        sa.Column("staff_id", sa.String(128)),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_binding_events_account", "binding_events", ["account_number", "id"])
    op.create_table(
        "resident_authorizations",
        sa.Column("account_number", sa.String(16), sa.ForeignKey("accounts.account_number"), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("operation", sa.SmallInteger, nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("to_account", sa.String(16), nullable=False),
        sa.Column("reward_id", sa.String(64)),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("platform", sa.String(32)),
        sa.Column("staff_id", sa.String(128)),
        sa.Column("caller_service", sa.String(255), nullable=False),
        sa.Column("caller", sa.String(128)),
        sa.Column("token_id", sa.String(36), nullable=False),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("resident_authorizations")
    op.drop_index("ix_binding_events_account", table_name="binding_events")
    op.drop_table("binding_events")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("name_hash_key")
        batch.drop_column("name_hash")
