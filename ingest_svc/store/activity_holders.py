"""Events whose activity another event holds nationally: recorded with 0 points and 0 g under reason
DUPLICATE_ACTIVITY, the points and grams taken back out of the day's statistics, and the holder kept for ExplainScore
(docs/adr/0413-claims-in-the-credit-outbox.md). A rare path: one statement per event."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from ingest_svc.domain.event_rows import NO_CREDIT, PENDING, EventRow
from ingest_svc.domain.events import DUPLICATE_ACTIVITY
from ingest_svc.domain.fingerprints import ActivityHolder
from ingest_svc.domain.scoring import DailyTotal
from ingest_svc.store import statistics
from ingest_svc.store.dialect import insert
from ingest_svc.store.tables import activity_holders, events


def holder_message(holder: ActivityHolder) -> str:
    return (
        f"the activity is held by event {holder.event_id!r} of partner {holder.partner_id!r} "
        f"in region {holder.region_code}: recorded with 0 points"
    )


def as_held_elsewhere(row: EventRow, holder: ActivityHolder) -> EventRow:
    """The row as it reads once recorded DUPLICATE_ACTIVITY."""
    return row._replace(
        status=NO_CREDIT, points=0, co2e_grams=0, reason=DUPLICATE_ACTIVITY, message=holder_message(holder)
    )


def record_held_elsewhere(conn: Connection, held: Sequence[tuple[EventRow, ActivityHolder]]) -> None:
    """Each still PENDING event becomes a 0-point DUPLICATE_ACTIVITY with its holder; one already changed (a retry
    after a crash) is left as it is, so nothing is subtracted twice."""
    for row, holder in held:
        changed = conn.execute(
            update(events)
            .where(events.c.partner_id == row.partner_id, events.c.event_id == row.event_id, events.c.status == PENDING)
            .values(status=NO_CREDIT, points=0, co2e_grams=0, reason=DUPLICATE_ACTIVITY, message=holder_message(holder))
        ).rowcount
        if not changed:
            continue
        conn.execute(
            insert(conn, activity_holders).on_conflict_do_nothing(),
            [
                {
                    "partner_id": row.partner_id,
                    "event_id": row.event_id,
                    "holder_region": holder.region_code,
                    "holder_partner": holder.partner_id,
                    "holder_event_id": holder.event_id,
                }
            ],
        )
        statistics.add_statistics(
            conn, [DailyTotal(row.region_code, row.behaviour, row.day, 0, -row.points, -row.co2e_grams)]
        )


def holder_of(conn: Connection, partner_id: str, event_id: str) -> ActivityHolder | None:
    c = activity_holders.c
    found = conn.execute(
        select(c.holder_region, c.holder_partner, c.holder_event_id).where(
            c.partner_id == partner_id, c.event_id == event_id
        )
    ).first()
    return ActivityHolder(*found) if found else None
