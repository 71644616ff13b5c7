"""Recent lots kept day first, moved into the per-account lots by a job (ADR 0137).

- `recent_lots`: the columns of `lots`, ids from the sequence of lots.lot_id on PostgreSQL (explicit ids on SQLite,
  store/accounts.py), keyed `(earned_on, account, expires_at_us)`; the sweep's `(expires_at_us, lot_id)` index; an
  account-first index `(account, expires_at_us, earned_on)` for every reader of an account's lots; the refill
  trigger of ledger_0012, so a lot refilled from empty is swept again wherever it lives.
- `accounts.lots_moved_through`: the last earning day whose lots are all in `lots`. Existing accounts start at the
  latest day of any lot (or today, China time, if later), so every existing lot counts as moved; on PostgreSQL that
  is the column's default when added (no rewrite of the accounts), then the default becomes 1970-01-01 for accounts
  created later, whose first lots go to recent_lots.

Revision ID: ledger_0014
Revises: ledger_0013
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0014"
down_revision: str | None = "ledger_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFILLED = "OLD.remaining_points = 0 AND NEW.remaining_points > 0"
_NEW_ACCOUNTS = "'1970-01-01'"
_CHINA = timezone(timedelta(hours=8))


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    latest = bind.execute(sa.text("SELECT max(earned_on) FROM lots")).scalar()
    if isinstance(latest, str):  # SQLite returns the stored text
        latest = date.fromisoformat(latest)
    today = datetime.now(_CHINA).date()
    moved_through = max(latest, today) if latest is not None else today
    key = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
    op.create_table(
        "recent_lots",
        sa.Column(
            "lot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
            server_default=sa.text("nextval('lots_lot_id_seq')") if postgresql else None,
        ),
        sa.Column("account", key, nullable=False),
        sa.Column("earned_on", sa.Date, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("credited_points", sa.BigInteger, nullable=False),
        sa.Column("remaining_points", sa.BigInteger, nullable=False),
        sa.Column("expired_points", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("has_points", sa.Boolean, sa.Computed("remaining_points > 0", persisted=True), nullable=False),
        sa.UniqueConstraint("earned_on", "account", "expires_at_us", name="uq_recent_lots_key"),
        sa.CheckConstraint("remaining_points >= 0", name="ck_recent_lots_remaining_not_negative"),
        postgresql_with={"fillfactor": 50},
    )
    op.create_index("ix_recent_lots_expiring", "recent_lots", ["expires_at_us", "lot_id"])
    op.create_index("ix_recent_lots_account", "recent_lots", ["account", "expires_at_us", "earned_on"])
    if postgresql:
        op.execute(
            f"ALTER TABLE accounts ADD COLUMN lots_moved_through date NOT NULL DEFAULT '{moved_through.isoformat()}'"
        )
        op.execute(f"ALTER TABLE accounts ALTER COLUMN lots_moved_through SET DEFAULT {_NEW_ACCOUNTS}")
        op.execute(
            "CREATE TRIGGER recent_lots_requeue_refilled AFTER UPDATE OF remaining_points ON recent_lots FOR EACH ROW"
            f" WHEN ({_REFILLED}) EXECUTE FUNCTION lots_requeue_refilled()"
        )
    else:
        op.add_column(
            "accounts",
            sa.Column("lots_moved_through", sa.Date, nullable=False, server_default=sa.text(_NEW_ACCOUNTS)),
        )
        op.execute(sa.text("UPDATE accounts SET lots_moved_through = :day").bindparams(day=moved_through.isoformat()))
        op.execute(
            "CREATE TRIGGER recent_lots_requeue_refilled AFTER UPDATE OF remaining_points ON recent_lots FOR EACH ROW"
            f" WHEN {_REFILLED} BEGIN INSERT OR IGNORE INTO expiry_requeue (lot_id) VALUES (NEW.lot_id); END"
        )


def downgrade() -> None:
    """Puts the recent lots back into `lots` (ids kept) before dropping their table."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    columns = "lot_id, account, earned_on, expires_at_us, credited_points, remaining_points, expired_points"
    op.execute(f"INSERT INTO lots ({columns}) SELECT {columns} FROM recent_lots")
    op.execute("DROP TRIGGER recent_lots_requeue_refilled" + (" ON recent_lots" if postgresql else ""))
    op.drop_table("recent_lots")
    op.drop_column("accounts", "lots_moved_through")
