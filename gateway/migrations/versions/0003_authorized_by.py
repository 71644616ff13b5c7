"""Who asked on the resident's behalf, recorded with each cross-region transfer and redeem-anywhere request.

Revision ID: gateway_0003
Revises: gateway_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0003"
down_revision: str | None = "gateway_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows from before resident authorizations were required keep an empty value.
    for table in ("xr_transfers", "xr_redeem_anywhere"):
        op.add_column(table, sa.Column("authorized_by", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    for table in ("xr_transfers", "xr_redeem_anywhere"):
        op.drop_column(table, "authorized_by")
