"""The expiry sweep's queries (any database): which expired lots may still hold points (the lots refilled since
they were emptied, then the range after the watermark, ADR 0133), re-reading them under their accounts' locks, and
emptying them."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select, text, tuple_, update

from ledger_svc.domain.expiry import ExpiringLot, ExpiryCandidate
from ledger_svc.store.dialects import chunks
from ledger_svc.store.tables import every_lot, expiry_requeue, expiry_watermark, lots, recent_lots

_LAST_LOT_ID = 2**63 - 1
# Moves the watermark forward only: two sweeps at once (a requested one beside the scheduled one) may finish in
# either order, and each has emptied, or seen emptied, every lot up to its own last key. Same SQL on both databases.
_ADVANCE_WATERMARK = text(
    """
    INSERT INTO expiry_watermark (id, expires_at_us, lot_id) VALUES (1, :expires_at_us, :lot_id)
    ON CONFLICT (id) DO UPDATE SET expires_at_us = excluded.expires_at_us, lot_id = excluded.lot_id
    WHERE (expiry_watermark.expires_at_us, expiry_watermark.lot_id) < (excluded.expires_at_us, excluded.lot_id)
    """
)


def watermark(conn: Connection) -> ExpiryCandidate | None:
    """The last lot, in (expiry, id) order, up to which every lot has been emptied or queued again; None before the
    first sweep."""
    row = conn.execute(select(expiry_watermark.c.lot_id, expiry_watermark.c.expires_at_us)).first()
    return None if row is None else ExpiryCandidate(row.lot_id, "", row.expires_at_us)


def swept_through(cutoff_us: int) -> ExpiryCandidate:
    """The watermark past every lot that expires by the cutoff, for a run that found no more of them with points."""
    return ExpiryCandidate(lot_id=_LAST_LOT_ID, account="", expires_at_us=cutoff_us)


def run_start(conn: Connection, cutoff_us: int) -> ExpiryCandidate | None:
    """Where a run goes after the queued lots: after the watermark, first brought back to the cutoff if it is past
    it. Only a clock moved back (a rehearsal's, ADR 0133) or an `as_of` in the past puts it there; a lot earned after
    the clock went back may expire before the old watermark, and starting earlier only rereads emptied lots."""
    conn.execute(
        update(expiry_watermark)
        .where(expiry_watermark.c.expires_at_us > cutoff_us)
        .values(expires_at_us=cutoff_us, lot_id=_LAST_LOT_ID)
    )
    return watermark(conn)


def advance_watermark(conn: Connection, last: ExpiryCandidate) -> None:
    conn.execute(_ADVANCE_WATERMARK, {"expires_at_us": last.expires_at_us, "lot_id": last.lot_id})


def requeued_candidates(conn: Connection, cutoff_us: int, limit: int) -> list[ExpiryCandidate]:
    """Up to `limit` queued lots (refilled since they were emptied) that expired by the cutoff, in (expiry, id)
    order, with what each holds now (maybe nothing: a spend may have emptied it again)."""
    lot = every_lot.c
    query = (
        select(lot.lot_id, lot.account, lot.expires_at_us, lot.remaining_points)
        .join(expiry_requeue, expiry_requeue.c.lot_id == lot.lot_id)
        .where(lot.expires_at_us <= cutoff_us)
        .order_by(lot.expires_at_us, lot.lot_id)
        .limit(limit)
    )
    return list(map(ExpiryCandidate._make, conn.execute(query)))


def unqueue(conn: Connection, lot_ids: list[int]) -> None:
    """Takes emptied lots off the queue: only under their accounts' locks, so no refill slips between the emptying
    and this (a refill after it queues the lot again)."""
    for part in chunks(lot_ids):
        conn.execute(delete(expiry_requeue).where(expiry_requeue.c.lot_id.in_(part)))


def expired_lot_candidates(
    conn: Connection, cutoff_us: int, limit: int, after: ExpiryCandidate | None
) -> list[ExpiryCandidate]:
    """Up to `limit` lots with points left that expired at or before the cutoff, after `after` (None: from the
    first lot) in (expiry, id) order, the order of both lot tables' expiring indexes, merged."""
    lot = every_lot.c
    query = select(lot.lot_id, lot.account, lot.expires_at_us, lot.remaining_points).where(
        lot.expires_at_us <= cutoff_us, lot.remaining_points > 0
    )
    if after is not None:
        query = query.where(tuple_(lot.expires_at_us, lot.lot_id) > tuple_(after.expires_at_us, after.lot_id))
    query = query.order_by(lot.expires_at_us, lot.lot_id).limit(limit)
    return list(map(ExpiryCandidate._make, conn.execute(query)))


def expiring_lots(conn: Connection, lot_ids: list[int], cutoff_us: int) -> list[ExpiringLot]:
    """The candidates re-read under their accounts' locks (another sweep may have emptied some)."""
    found: list[ExpiringLot] = []
    for part in chunks(lot_ids):
        for row in conn.execute(
            select(every_lot).where(
                every_lot.c.lot_id.in_(part), every_lot.c.remaining_points > 0, every_lot.c.expires_at_us <= cutoff_us
            )
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
    if not expired:
        return
    rows = [{"id": lot.lot_id, "points": lot.points} for lot in sorted(expired, key=lambda item: item.lot_id)]
    for table in (lots, recent_lots):  # each lot is in one of them
        conn.execute(
            update(table)
            .where(table.c.lot_id == bindparam("id"))
            .values(
                remaining_points=table.c.remaining_points - bindparam("points"),
                expired_points=table.c.expired_points + bindparam("points"),
            ),
            rows,
        )
