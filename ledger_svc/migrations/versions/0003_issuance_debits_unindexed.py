"""ix_transfers_debit leaves out system:issuance's debits on PostgreSQL: one per earn, all at one hot spot of the
index, and no query needs them (ADR 0105). SQLite keeps the whole index.

Revision ID: ledger_0003
Revises: ledger_0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ledger_0003"
down_revision: str | None = "ledger_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_transfers_debit", table_name="transfers")
        op.execute(
            "CREATE INDEX ix_transfers_debit ON transfers (debit_account, seq) WHERE debit_account <> 'system:issuance'"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_transfers_debit", table_name="transfers")
        op.create_index("ix_transfers_debit", "transfers", ["debit_account", "seq"])
