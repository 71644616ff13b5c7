"""The general expiry sweep's queries (any database): expired lots with points left, in expiry order; emptying them."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select, update

from ledger_svc.domain.expiry import ExpiringLot
from ledger_svc.store.dialects import chunks
from ledger_svc.store.tables import lots


def expired_lot_candidates(conn: Connection, cutoff_us: int, limit: int) -> list[int]:
    """Ids of up to `limit` lots with points left that expired at or before the cutoff (index order)."""
    # has_points (= remaining_points > 0) is what ix_lots_expiring is partial on: named so the index applies.
    return list(
        conn.execute(
            select(lots.c.lot_id)
            .where(lots.c.has_points, lots.c.expires_at_us <= cutoff_us)
            .order_by(lots.c.expires_at_us, lots.c.lot_id)
            .limit(limit)
        ).scalars()
    )


def expiring_lots(conn: Connection, lot_ids: list[int], cutoff_us: int) -> list[ExpiringLot]:
    """The candidates re-read under their accounts' locks (another sweep may have emptied some)."""
    found: list[ExpiringLot] = []
    for part in chunks(lot_ids):
        for row in conn.execute(
            select(lots).where(lots.c.lot_id.in_(part), lots.c.remaining_points > 0, lots.c.expires_at_us <= cutoff_us)
        ):
            found.append(
                ExpiringLot(
                    lot_id=row.lot_id,
                    account=row.account,
                    expires_at_us=row.expires_at_us,
                    earned_on=row.earned_on,
                    points=row.remaining_points,
                    expired_before=row.expired_points,
                )
            )
    return found


def empty_lots(conn: Connection, expired: list[ExpiringLot]) -> None:
    conn.execute(
        update(lots)
        .where(lots.c.lot_id == bindparam("id"))
        .values(
            remaining_points=lots.c.remaining_points - bindparam("points"),
            expired_points=lots.c.expired_points + bindparam("points"),
        ),
        [{"id": lot.lot_id, "points": lot.points} for lot in sorted(expired, key=lambda item: item.lot_id)],
    )
