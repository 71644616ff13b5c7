"""The ledger's tables: accounts, sharded system balances, lots, transfers, holds, the journal chain.

Revision ID: ledger_0001
Revises: ledger_0000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0001"
down_revision: str | None = "ledger_0000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UNSEALED = sa.text("block_no IS NULL")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account", sa.String(32), primary_key=True),
        sa.Column("balance_points", sa.BigInteger, nullable=False),
        sa.Column("held_points", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("balance_points >= 0", name="ck_accounts_balance_not_negative"),
        sa.CheckConstraint(
            "held_points >= 0 AND held_points <= balance_points", name="ck_accounts_held_within_balance"
        ),
    )
    op.create_table(
        "system_balances",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("shard", sa.SmallInteger, nullable=False),
        sa.Column("balance_points", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("account", "shard", name="pk_system_balances"),
    )
    op.create_table(
        "lots",
        sa.Column("lot_id", Serial, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("earned_on", sa.Date, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("credited_points", sa.BigInteger, nullable=False),
        sa.Column("remaining_points", sa.BigInteger, nullable=False),
        sa.Column("expired_points", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("account", "expires_at_us", "earned_on", name="uq_lots_key"),
        sa.CheckConstraint("remaining_points >= 0", name="ck_lots_remaining_not_negative"),
    )
    positive = sa.text("remaining_points > 0")
    op.create_index("ix_lots_expiring", "lots", ["expires_at_us"], postgresql_where=positive, sqlite_where=positive)
    op.create_table(
        "transfers",
        sa.Column("seq", Serial, primary_key=True, autoincrement=True),
        sa.Column("transfer_id", sa.String(128), nullable=False, unique=True),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("debit_account", sa.String(32), nullable=False),
        sa.Column("credit_account", sa.String(32), nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("code", sa.SmallInteger, nullable=False),
        sa.Column("reference", sa.String(256), nullable=False),
        sa.Column("co2e_grams", sa.BigInteger, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("earned_at_us", sa.BigInteger, nullable=False),
        sa.Column("posted_at_us", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("debit_balance_after", sa.BigInteger),
        sa.Column("credit_balance_after", sa.BigInteger),
        sa.Column("refund_of", sa.String(128)),
        sa.CheckConstraint("amount_points > 0", name="ck_transfers_amount_positive"),
    )
    op.create_index("ix_transfers_debit", "transfers", ["debit_account", "seq"])
    op.create_index("ix_transfers_credit", "transfers", ["credit_account", "seq"])
    refunds = sa.text("refund_of IS NOT NULL")
    op.create_index(
        "ix_transfers_refund_of", "transfers", ["refund_of"], postgresql_where=refunds, sqlite_where=refunds
    )
    op.create_table(
        "transfer_lots",
        sa.Column("transfer_id", sa.String(128), nullable=False),
        sa.Column("side", sa.String(1), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("lot_id", sa.BigInteger, nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("transfer_id", "side", "position", name="pk_transfer_lots"),
    )
    op.create_table(
        "holds",
        sa.Column("hold_id", sa.String(128), primary_key=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("committed_points", sa.BigInteger, nullable=False),
        sa.Column("credit_account", sa.String(32), nullable=False),
        sa.Column("code", sa.SmallInteger, nullable=False),
        sa.Column("reference", sa.String(256), nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger),
    )
    op.create_index("ix_holds_account_state", "holds", ["account", "state"])
    pending = sa.text("state = 1")
    op.create_index(
        "ix_holds_pending_expiry", "holds", ["expires_at_us"], postgresql_where=pending, sqlite_where=pending
    )
    op.create_table(
        "hold_lots",
        sa.Column("hold_id", sa.String(128), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("lot_id", sa.BigInteger, nullable=False),
        sa.Column("amount_points", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hold_id", "position", name="pk_hold_lots"),
    )
    op.create_table(
        "journal_batches",
        sa.Column("batch_id", Serial, primary_key=True, autoincrement=True),
        sa.Column("entries_count", sa.Integer, nullable=False),
        sa.Column("entries_hash", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("block_no", sa.BigInteger, unique=True),
        sa.Column("prev_hash", sa.String(64)),
        sa.Column("block_hash", sa.String(64)),
    )
    op.create_index(
        "ix_journal_batches_unsealed",
        "journal_batches",
        ["batch_id"],
        postgresql_where=_UNSEALED,
        sqlite_where=_UNSEALED,
    )
    chain_head = op.create_table(
        "chain_head",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("last_block_no", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(chain_head, [{"id": 1, "last_block_no": 0, "last_hash": "0" * 64}])


def downgrade() -> None:
    for table in (
        "chain_head",
        "journal_batches",
        "hold_lots",
        "holds",
        "transfer_lots",
        "transfers",
        "lots",
        "system_balances",
        "accounts",
    ):
        op.drop_table(table)
