"""Who holds a saga's lease: a gateway restarted under its instance name takes back the leases its killed
predecessor left, instead of waiting for them to run out (docs/adr/0622-recovery-takes-back-its-own-leases.md).

Revision ID: gateway_0007
Revises: gateway_0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0007"
down_revision: str | None = "gateway_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: leases written by a gateway of the previous release name no one and simply run out, as before.
    for table in ("xr_transfers", "xr_redeem_anywhere"):
        op.add_column(table, sa.Column("lease_owner", sa.String(64)))


def downgrade() -> None:
    for table in ("xr_transfers", "xr_redeem_anywhere"):
        op.drop_column(table, "lease_owner")
