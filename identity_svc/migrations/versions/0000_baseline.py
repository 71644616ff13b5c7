"""Baseline: an empty schema that later revisions of identity_svc build on.

Revision ID: identity_0000
Revises:
"""

from collections.abc import Sequence

revision: str = "identity_0000"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
