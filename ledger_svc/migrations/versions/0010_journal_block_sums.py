"""Per sealed block, each system account's net entries (journal_block_sums), and transfers indexed by batch so that
sealing finds a block's entries: the incremental conservation check sums these (ADR 0129). Blocks sealed before
are summed here, once.

Revision ID: ledger_0010
Revises: ledger_0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0010"
down_revision: str | None = "ledger_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sums of every block sealed so far, as sealing writes them (store/chain.system_nets), for both dialects.
_BACKFILL = """
INSERT INTO journal_block_sums (batch_id, account, net_points)
SELECT sides.batch_id, sides.account, sum(sides.points)
FROM (
    SELECT t.batch_id, t.credit_account AS account, t.amount_points AS points
    FROM transfers t JOIN journal_batches b ON b.batch_id = t.batch_id
    WHERE b.block_no IS NOT NULL AND t.credit_account LIKE 'system:%'
    UNION ALL
    SELECT t.batch_id, t.debit_account, -t.amount_points
    FROM transfers t JOIN journal_batches b ON b.batch_id = t.batch_id
    WHERE b.block_no IS NOT NULL AND t.debit_account LIKE 'system:%'
) AS sides
GROUP BY sides.batch_id, sides.account
"""


def upgrade() -> None:
    op.create_table(
        "journal_block_sums",
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("net_points", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "account", name="pk_journal_block_sums"),
    )
    op.create_index("ix_transfers_batch", "transfers", ["batch_id"])
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_transfers_batch", table_name="transfers")
    op.drop_table("journal_block_sums")
