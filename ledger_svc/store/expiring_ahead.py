"""The region's points still in lots, summed by the instant the lots expire (a China day's start), in a window."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from ledger_svc.store.tables import every_lot


def points_by_expiry(conn: Connection, from_us: int, before_us: int) -> list[tuple[int, int, int]]:
    """(expires_at_us, points left, lots) for lots with points that expire in [from_us, before_us). Lots expire at
    day starts, so a window of months has a row per day at most; ix_lots_expiring (every lot, ADR 0133) gives the
    window's lots, those without points skipped."""
    query = (
        select(every_lot.c.expires_at_us, func.sum(every_lot.c.remaining_points), func.count())
        .where(
            every_lot.c.remaining_points > 0,
            every_lot.c.expires_at_us >= from_us,
            every_lot.c.expires_at_us < before_us,
        )
        .group_by(every_lot.c.expires_at_us)
    )
    return [(int(at), int(points), int(count)) for at, points, count in conn.execute(query)]
