"""Moving recent lots of closed days into the per-account lots (ADR 0137): a batch of accounts per transaction.

Portable SQL. Under the batch's account locks the lots of those accounts change only here, so the copy, the delete
and the new moved-through day see the same rows, and a lot leaves recent_lots in the transaction that writes it to
lots, with its id.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, delete, func, insert, select, update

from ledger_svc.store.dialects import chunks
from ledger_svc.store.tables import LOT_COLUMNS, accounts, lots, recent_lots


def accounts_to_move(conn: Connection, through: date, after: str, limit: int) -> list[str]:
    """The next `limit` accounts after `after`, in account order, with a recent lot earned by `through`: a walk of
    recent_lots' account-first index."""
    query = (
        select(recent_lots.c.account)
        .distinct()
        .where(recent_lots.c.account > after, recent_lots.c.earned_on <= through)
        .order_by(recent_lots.c.account)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def move_accounts(conn: Connection, names: list[str], through: date) -> int:
    """Locks the accounts (in account order), moves their recent lots earned by `through` into lots and marks the
    accounts moved through that day; returns how many lots moved. SQLite's one writer already serialises."""
    for part in chunks(names):
        conn.execute(
            select(accounts.c.account)
            .where(accounts.c.account.in_(part))
            .order_by(accounts.c.account)
            .with_for_update()
        ).all()
    moved = 0
    for part in chunks(names):
        closed = (recent_lots.c.account.in_(part), recent_lots.c.earned_on <= through)
        source = (
            select(*[recent_lots.c[name] for name in LOT_COLUMNS])
            .where(*closed)
            .order_by(recent_lots.c.account, recent_lots.c.expires_at_us, recent_lots.c.earned_on)
        )
        conn.execute(insert(lots).from_select(list(LOT_COLUMNS), source))
        moved += conn.execute(delete(recent_lots).where(*closed)).rowcount
        conn.execute(
            update(accounts)
            .where(accounts.c.account.in_(part), accounts.c.lots_moved_through < through)
            .values(lots_moved_through=through)
        )
    return moved


def recent_days(conn: Connection) -> tuple[date | None, date | None, int]:
    """The first and last earning day in recent_lots and how many lots it holds (for operators and benches)."""
    row = conn.execute(select(func.min(recent_lots.c.earned_on), func.max(recent_lots.c.earned_on), func.count())).one()
    return row[0], row[1], int(row[2])
