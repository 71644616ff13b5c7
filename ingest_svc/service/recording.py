"""The record phase: ONE local transaction per submission finds events stored already (the unique key is the last
word on duplicates), scores the new ones under the daily caps, and writes their rows, the credit batch they owe,
the cap counters and the statistics."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ingest_svc.domain.event_rows import PENDING, EventRow, event_rows
from ingest_svc.domain.scoring import daily_totals, score_events
from ingest_svc.service.consent import Owned
from ingest_svc.service.crash_points import CrashPoint
from ingest_svc.service.crediting import InFlight
from ingest_svc.store import caps, credit_batches, events, statistics
from ingest_svc.store.credit_batches import CreditBatch
from service_kit.errors import ResourceExhausted, Unavailable

log = logging.getLogger("carbon.ingest")

RACE_RETRIES = 3


@dataclass(frozen=True)
class Recorded:
    rows: list[EventRow]  # the new events as written, in the candidates' order
    duplicates: dict[str, EventRow]  # events another submission had stored, by event id
    credit_batch: CreditBatch | None  # what the new rows owe the ledger, claimed in InFlight; None when nothing


class _Race(Exception):
    """A concurrent batch inserted one of our event ids or cap counters between our read and our write: redo the
    transaction."""


class Recorder:
    def __init__(self, engine: Engine, in_flight: InFlight, crash_point: CrashPoint) -> None:
        self._engine = engine
        self._in_flight = in_flight
        self._crash_point = crash_point

    def record(
        self, partner_id: str, owned: Mapping[str, Owned], now: datetime, optimistic: bool, credit_batch_id: str = ""
    ) -> Recorded:
        """Records the owned candidates (by event id, in order) in one transaction; what they owe goes under
        `credit_batch_id` (a fresh id when empty), whichever attempt commits: claims made ahead name it (ADR 0415).

        Optimistic: the first attempt skips the look-up of existing events and writes them by COPY; if one exists
        after all, the transaction rolls back (nothing of it stays) and the next attempt looks first, as a
        concurrent race does. A race on a new cap counter redoes the transaction the same way.
        """
        credit_batch_id = credit_batch_id or uuid.uuid4().hex
        for attempt in range(RACE_RETRIES + optimistic):
            look_first = not (optimistic and attempt == 0)
            try:
                return self._attempt(partner_id, owned, now, look_first, credit_batch_id)
            except (_Race, IntegrityError) as race:
                if isinstance(race, IntegrityError) and look_first:
                    self._refuse_if_abandoned(credit_batch_id)
                    raise
                log.info("event id or cap counter race, retrying", extra={"partner_id": partner_id, "attempt": attempt})
        raise ResourceExhausted("CONTENTION", "the same events are being submitted concurrently; retry")

    def _refuse_if_abandoned(self, credit_batch_id: str) -> None:
        """The sweep of claims left behind gave this attempt up (it ran longer than the sweep's age, ADR 0416) and
        released its claims: nothing of it was committed; the partner's retry is a new attempt."""
        with self._engine.connect() as conn:
            abandoned = credit_batches.is_abandoned(conn, credit_batch_id)
        if abandoned:
            raise Unavailable("ATTEMPT_ABANDONED", "the batch took too long to record and was given up; retry it")

    def _attempt(
        self, partner_id: str, owned: Mapping[str, Owned], now: datetime, look_first: bool, credit_batch_id: str
    ) -> Recorded:
        claimed: list[str] = []
        try:
            with self._engine.begin() as conn:
                duplicates = events.find_events(conn, partner_id, list(owned)) if look_first else {}
                new = [pair for event_id, pair in owned.items() if event_id not in duplicates]
                rows, owed = _write(conn, partner_id, new, now, not look_first, credit_batch_id)
                # Claimed before the commit makes it visible, so no concurrent duplicate posts it meanwhile.
                claimed = self._in_flight.claim([owed.credit_batch_id] if owed else [])
            self._crash_point("after_commit")
            return Recorded(rows, duplicates, owed)
        except BaseException:
            self._in_flight.release(claimed)
            raise


def _write(
    conn: Connection, partner_id: str, new: list[Owned], now: datetime, surely_new: bool, credit_batch_id: str
) -> tuple[list[EventRow], CreditBatch | None]:
    """Scores the new events under their locked cap counters and writes everything they change."""
    counted = caps.lock_cap_counters(conn, [(number, c.valid.rule.behaviour, c.valid.day) for c, number in new])
    scores, totals = score_events([(c.valid, number) for c, number in new], counted)
    rows = event_rows(partner_id, zip([c.batch_id for c, _ in new], scores, strict=True), now, credit_batch_id)
    inserted = events.insert_events(conn, rows, surely_new=surely_new)
    if len(inserted) != len(rows) or not caps.write_cap_counters(conn, counted, totals):
        raise _Race()
    owed = CreditBatch(credit_batch_id, partner_id, [row.event_id for row in rows if row.status == PENDING])
    if owed.event_ids:
        credit_batches.insert_credit_batch(conn, owed, now)
    statistics.add_statistics(conn, daily_totals(scores))
    return rows, owed if owed.event_ids else None
