"""Counts of the region's accounts for a month, by the channel they were opened through (no account is named)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, case, func, or_, select

from identity_svc.store.tables import accounts


def channel_counts(conn: Connection, start: datetime, end: datetime) -> dict[int, tuple[int, int, int]]:
    """Per channel (opened_via): accounts opened in [start, end), open at `end`, closed in [start, end)."""
    opened = func.sum(case((and_(accounts.c.opened_at >= start, accounts.c.opened_at < end), 1), else_=0))
    open_at_end = func.sum(
        case((and_(accounts.c.opened_at < end, or_(accounts.c.closed_at.is_(None), accounts.c.closed_at >= end)), 1),
             else_=0)
    )  # fmt: skip
    closed = func.sum(case((and_(accounts.c.closed_at >= start, accounts.c.closed_at < end), 1), else_=0))
    query = (
        select(accounts.c.opened_via, opened.label("opened"), open_at_end.label("open"), closed.label("closed"))
        .where(accounts.c.opened_at < end)
        .group_by(accounts.c.opened_via)
    )
    return {int(r.opened_via): (int(r.opened or 0), int(r.open or 0), int(r.closed or 0)) for r in conn.execute(query)}
