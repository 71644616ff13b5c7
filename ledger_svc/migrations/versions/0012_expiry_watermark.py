"""Emptying a lot is a HOT update (ADR 0133): which lots the expiry sweep must still visit is no longer an index of
the lots' own points.

- `ix_lots_expiring` covers every lot, on (expires_at_us, lot_id), with no predicate: the sweep's keyset order, and
  no column the sweep writes is in any lot index.
- `expiry_watermark` (one row): the (expiry, lot id) up to which the sweep has emptied every lot; the next run starts
  after it instead of scanning the entries of every lot emptied before.
- `expiry_requeue`: lots refilled from empty (a refund or a released hold into an emptied lot), filled by a trigger
  on every update that takes a lot from 0 to more, so a refill behind the watermark is swept again.
- Lots keep half of each page free (fillfactor 50, was 70): the sweep updates every row of a day's pages in one
  transaction, and a HOT update needs room on the row's own page. Pages written from now on get the room; existing
  ones keep theirs (no rewrite of the table under an exclusive lock).

Revision ID: ledger_0012
Revises: ledger_0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0012"
down_revision: str | None = "ledger_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The trigger's condition, the same on both databases: only an update that refills an empty lot queues it.
_REFILLED = "OLD.remaining_points = 0 AND NEW.remaining_points > 0"
LOTS_FILLFACTOR = 50


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_lots_expiring", table_name="lots")
    op.create_index("ix_lots_expiring", "lots", ["expires_at_us", "lot_id"])
    op.create_table(
        "expiry_watermark",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("lot_id", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_expiry_watermark_one_row"),
    )
    op.create_table("expiry_requeue", sa.Column("lot_id", sa.BigInteger, primary_key=True))
    if postgresql:
        op.execute(f"ALTER TABLE lots SET (fillfactor = {LOTS_FILLFACTOR})")
        op.execute(
            # The schema it was created in, whatever the updating session's search_path.
            "CREATE FUNCTION lots_requeue_refilled() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT"
            " AS $$ BEGIN"
            " INSERT INTO expiry_requeue (lot_id) VALUES (NEW.lot_id) ON CONFLICT DO NOTHING; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER lots_requeue_refilled AFTER UPDATE OF remaining_points ON lots FOR EACH ROW"
            f" WHEN ({_REFILLED}) EXECUTE FUNCTION lots_requeue_refilled()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER lots_requeue_refilled AFTER UPDATE OF remaining_points ON lots FOR EACH ROW"
            f" WHEN {_REFILLED} BEGIN INSERT OR IGNORE INTO expiry_requeue (lot_id) VALUES (NEW.lot_id); END"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TRIGGER lots_requeue_refilled" + (" ON lots" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION lots_requeue_refilled()")
        op.execute("ALTER TABLE lots SET (fillfactor = 70)")
    op.drop_table("expiry_requeue")
    op.drop_table("expiry_watermark")
    op.drop_index("ix_lots_expiring", table_name="lots")
    op.create_index(
        "ix_lots_expiring",
        "lots",
        ["expires_at_us"],
        postgresql_where=sa.text("has_points"),
        sqlite_where=sa.text("has_points = 1"),
    )
