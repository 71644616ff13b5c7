"""ix_transfers_credit keyed by the seq's bucket first, `((seq >> 18), credit_account, seq)`, so that a credit inserts
into the newest bucket's leaves only (ADR 0136; ADR 0135 measured the account-first index's random leaf per credit
as half of what earning loses on a preloaded ledger). PostgreSQL keeps ADR 0130's predicate (system:expiry's credits
left out). SQLite takes the same key, whole as before: one index shape and one statement query for both databases.

`accounts.opened_after_seq`: the journal's last seq when the account was created, below every entry of the account,
where its statement's walk stops. NULL for the accounts that exist now (their walk goes down to the first bucket):
filling it in would rewrite every account row.

The index is rebuilt in the migration's transaction, which holds writes to the journal meanwhile (ADR 0136 gives the
time at 5M transfers), as ledger_0011 did.

Revision ID: ledger_0013
Revises: ledger_0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0013"
down_revision: str | None = "ledger_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The width store/tables.py names (STATEMENT_BUCKET_BITS), written out: a migration keeps the shape it built.
_BUCKETED = "CREATE INDEX ix_transfers_credit ON transfers ((seq >> 18), credit_account, seq)"
_BY_ACCOUNT = "CREATE INDEX ix_transfers_credit ON transfers (credit_account, seq)"
_EXPIRY_LEFT_OUT = " WHERE credit_account <> 'system:expiry'"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_transfers_credit", table_name="transfers")
    op.execute(_BUCKETED + (_EXPIRY_LEFT_OUT if postgresql else ""))
    op.add_column("accounts", sa.Column("opened_after_seq", sa.BigInteger))


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.drop_column("accounts", "opened_after_seq")
    op.drop_index("ix_transfers_credit", table_name="transfers")
    op.execute(_BY_ACCOUNT + (_EXPIRY_LEFT_OUT if postgresql else ""))
