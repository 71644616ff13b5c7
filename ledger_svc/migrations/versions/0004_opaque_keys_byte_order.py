"""Account numbers and transfer ids compare byte by byte on PostgreSQL (`COLLATE "C"`): their order means nothing,
and the database's locale made every index comparison a strcoll call (ADR 0107). SQLite compares bytes already.

Columns: accounts.account, lots.account, transfers.transfer_id, debit_account and credit_account. Hold ids keep the
database's collation: the hold-id range probe (store/credits.py) takes its bounds with min()/max() in that collation.

Only the collation changes, so PostgreSQL does not rewrite the tables; it rebuilds every index on these columns
(accounts' key, uq_lots_key, transfers' transfer_id key, ix_transfers_debit and ix_transfers_credit) under an ACCESS
EXCLUSIVE lock on each table in turn: reads and writes of the ledger wait. Measured here: 1.4 s per million
transfers (all three transfer indexes), about 0.1 s per million lots; plan a maintenance window on a large journal.

Revision ID: ledger_0004
Revises: ledger_0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ledger_0004"
down_revision: str | None = "ledger_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, [(column, length)]): one ALTER TABLE per table, so each index is rebuilt once.
COLUMNS = [
    ("accounts", [("account", 32)]),
    ("lots", [("account", 32)]),
    ("transfers", [("transfer_id", 128), ("debit_account", 32), ("credit_account", 32)]),
]


def upgrade() -> None:
    _set_collation('"C"')


def downgrade() -> None:
    _set_collation('"default"')


def _set_collation(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS:
        changes = ", ".join(
            f"ALTER COLUMN {column} TYPE varchar({length}) COLLATE {collation}" for column, length in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")
