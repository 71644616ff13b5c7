"""The scheduler's tables: the leader lease (one row, created here) and the job runs (ADR 0108).

Revision ID: ledger_0005
Revises: ledger_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0005"
down_revision: str | None = "ledger_0004"
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
        sa.Column("started_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("finished_at_us", sa.BigInteger, nullable=False),
        sa.Column("items", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("batches", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("job", "period", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_updated", "job_runs", ["updated_at_us"])


def downgrade() -> None:
    op.drop_index("ix_job_runs_updated", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_leases")
