"""The attempt a claim was made under (docs/adr/0415-claims-ahead-of-recording.md): claims made while the claimant
records its events carry its attempt id, so that attempt can give back exactly the claims it did not record, and a
later attempt that did record them can take them over. Nullable: claims made after recording carry none.

Revision ID: gateway_0005
Revises: gateway_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0005"
down_revision: str | None = "gateway_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: a catalogue change on the parent and every day partition, no rewrite.
    op.add_column("gateway_activity_claims", sa.Column("attempt_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("gateway_activity_claims", "attempt_id")
