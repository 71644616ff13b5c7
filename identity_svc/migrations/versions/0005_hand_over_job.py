"""The daily hand-over job (issue 17, ADR 0210): the leader lease among identity's replicas and the job's runs, one
per China day, with their state, count and last outcome.

Revision ID: identity_0005
Revises: identity_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0005"
down_revision: str | None = "identity_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    leases = op.create_table(
        "job_leases",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(leases, [{"name": "scheduler", "holder": "", "expires_at_us": 0}])
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("items", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("job", "period", name="pk_identity_job_runs"),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("job_leases")
