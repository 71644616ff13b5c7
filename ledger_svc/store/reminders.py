"""What reminders read: per account, the points in lots expiring within a day, and user balances (portable SQL)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from ledger_svc.store.tables import accounts, every_lot


def expiring_in(conn: Connection, start_us: int, end_us: int, after: str, limit: int) -> list[tuple[str, int]]:
    """(account, points) of lots expiring in [start, end), per account after `after`, in account order. System
    accounts hold no lots, so every account here is a resident's."""
    points = func.sum(every_lot.c.remaining_points)
    query = (
        select(every_lot.c.account, points)
        .where(
            every_lot.c.remaining_points > 0, every_lot.c.expires_at_us >= start_us, every_lot.c.expires_at_us < end_us
        )
        .where(every_lot.c.account > after)
        .group_by(every_lot.c.account)
        .order_by(every_lot.c.account)
        .limit(limit)
    )
    return [(str(account), int(total)) for account, total in conn.execute(query)]


def balances(conn: Connection, after: str, limit: int) -> list[tuple[str, int]]:
    """(account, balance) of user accounts after `after` with points, in account order."""
    query = (
        select(accounts.c.account, accounts.c.balance_points)
        .where(accounts.c.account > after, accounts.c.balance_points > 0)
        .order_by(accounts.c.account)
        .limit(limit)
    )
    return [(str(account), int(balance)) for account, balance in conn.execute(query)]
