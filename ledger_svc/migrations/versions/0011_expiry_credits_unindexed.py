"""ix_transfers_credit leaves out system:expiry's credits on PostgreSQL: one per emptied lot, all at one hot spot of
the index, as issuance's debits were (ADR 0105, ADR 0130). SQLite keeps the whole index.

Revision ID: ledger_0011
Revises: ledger_0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ledger_0011"
down_revision: str | None = "ledger_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_transfers_credit", table_name="transfers")
        op.execute(
            "CREATE INDEX ix_transfers_credit ON transfers (credit_account, seq)"
            " WHERE credit_account <> 'system:expiry'"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_transfers_credit", table_name="transfers")
        op.create_index("ix_transfers_credit", "transfers", ["credit_account", "seq"])
