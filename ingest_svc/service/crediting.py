"""The credit phase: what recording transactions owe the ledger (their credit batches, the outbox of
docs/adr/0405-credit-batches-as-an-outbox.md) claimed at the gateway in one call (docs/adr/0413), posted in one ledger
call each, then marked POSTED in one short transaction. No database transaction is held open across either call
(docs/adr/0401-exactly-once-crediting.md)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

from sqlalchemy import Engine

from ingest_svc.clients import CreditMetadata, CreditResult, EarnCredit, LedgerClient
from ingest_svc.domain import events as ev
from ingest_svc.domain.event_rows import LEDGER_FAILED, PENDING, EventRow
from ingest_svc.domain.events import new_tuple
from ingest_svc.service.claims import ActivityClaims, ClaimAhead
from ingest_svc.service.consent import Owned
from ingest_svc.service.crash_points import CrashPoint, armed_at
from ingest_svc.store import activity_holders, credit_batches, events
from ingest_svc.store.credit_batches import CreditBatch
from service_kit.clock import Clock

log = logging.getLogger("carbon.ingest")


class InFlight:
    """The credit batches this process is posting right now: a concurrent duplicate leaves them to the request that
    claimed them instead of posting the same transfers twice at once. A crash empties it; the resubmission or the
    owed-credits sweep (service/owed_credits.py) then posts what is still owed."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, credit_batch_ids: Iterable[str]) -> list[str]:
        """The credit batches not being posted already, now marked as being posted."""
        with self._lock:
            free = [batch_id for batch_id in credit_batch_ids if batch_id not in self._ids]
            self._ids.update(free)
        return free

    def release(self, credit_batch_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.difference_update(credit_batch_ids)


def earn_credits(rows: Iterable[EventRow]) -> list[EarnCredit]:
    """What the ledger is asked to credit for stored rows, in order. Rows of one partner, behaviour and rule share one
    metadata value, built once per batch, by which the client groups them."""
    metadata_of: dict[tuple[str, str, str], CreditMetadata] = {}
    credits: list[EarnCredit] = []
    append = credits.append
    for row in rows:
        key = (row.partner_id, row.behaviour, row.rule_version_id)
        metadata = metadata_of.get(key)
        if metadata is None:
            metadata = metadata_of[key] = (("partner_id", key[0]), ("behaviour", key[1]), ("rule", key[2]))
        append(
            new_tuple(
                EarnCredit,
                (
                    row.transfer_id,
                    row.account_number,
                    row.points,
                    row.occurred_at,
                    row.co2e_grams,
                    row.event_id,
                    metadata,
                ),
            )
        )
    return credits


class Crediting:
    def __init__(
        self,
        engine: Engine,
        ledger: LedgerClient,
        clock: Clock,
        in_flight: InFlight,
        crash_point: CrashPoint,
        claims: ActivityClaims | None = None,
        claim_ahead: bool = True,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._claims = claims or ActivityClaims(None, {}, None)
        self._claim_ahead = claim_ahead
        self._clock = clock
        self._in_flight = in_flight
        self._crash_point = crash_point

    @property
    def claims(self) -> ActivityClaims:
        return self._claims

    @property
    def claims_ahead(self) -> bool:
        """Whether claims are on and made ahead of recording (which may leave claims to sweep, ADR 0416)."""
        return self._claims.on and self._claim_ahead

    def claim_ahead(self, partner_id: str, owned: Mapping[str, Owned], attempt_id: str) -> ClaimAhead | None:
        """Claims the owned candidates while the record transaction (credit batch `attempt_id`) writes them, so the
        claim's round trip overlaps it (docs/adr/0415-claims-ahead-of-recording.md); None when claims are off."""
        ahead = self._claims.ahead(partner_id, owned, attempt_id) if self._claim_ahead else None
        if ahead is not None and armed_at(self._crash_point, "after_claim_ahead"):
            ahead.answers()  # the test's crash comes once the gateway holds the claims, before anything is recorded
            self._crash_point("after_claim_ahead")
        return ahead

    def release_ahead(self, ahead: ClaimAhead | None) -> None:
        """Gives back every claim made ahead for a record attempt that failed."""
        if ahead is not None:
            self._claims.release_ahead(ahead)

    def settle(
        self,
        own: CreditBatch | None,
        rows: Sequence[EventRow],
        duplicates: Mapping[str, EventRow],
        ahead: ClaimAhead | None = None,
    ) -> dict[str, EventRow]:
        """Posts a submission's own credit batch (claimed when it was recorded) and finishes whole every other credit
        batch its duplicates are still owed by (a crash before their ledger call), so a partial resubmission never
        leaves part of a batch owed behind a POSTED marker. Returns the rows the ledger refused, by event id, as they
        now read. `ahead`: the claims made while recording, settled with the own batch (or all released)."""
        owed = sorted({row.credit_batch_id for row in duplicates.values() if row.status == PENDING})
        claimed = self._in_flight.claim(owed)
        refused: dict[str, EventRow] = {}
        try:
            if own is not None:
                refused = self.post(own, [row for row in rows if row.status == PENDING], ahead)
            else:
                self.release_ahead(ahead)
            self.finish_owed(claimed)
        finally:
            self._in_flight.release(claimed + ([own.credit_batch_id] if own is not None else []))
        return refused

    def post(self, batch: CreditBatch, rows: list[EventRow], ahead: ClaimAhead | None = None) -> dict[str, EventRow]:
        """One claim call and one ledger call for a credit batch's events, then one short transaction marks the batch
        POSTED. Returns the rows not credited, by event id, as they now read: DUPLICATE_ACTIVITY (another event holds
        the activity) or LEDGER_FAILED with the ledger's reason.

        A retry after a crash claims again: the gateway answers an event's own claim as held, so it proceeds. The
        claims are made as recorded under the batch's id, taking over any the same events made in another attempt.
        With `ahead` (claimed while the batch was recorded, under its id) the answers come from that claim."""
        if ahead is not None and ahead.attempt_id == batch.credit_batch_id:
            held_elsewhere = self._claims.settle_ahead(ahead, rows)
        else:
            self.release_ahead(ahead)
            held_elsewhere = self._claims.claim(rows, batch.credit_batch_id)
        self._crash_point("after_claim")
        credited = [row for row in rows if row.event_id not in held_elsewhere] if held_elsewhere else rows
        outcomes = self._ledger.credit(earn_credits(credited))
        self._crash_point("after_ledger")
        # The client answers in the order of the credits, one per row.
        failed = [(row, outcome) for row, outcome in zip(credited, outcomes, strict=True) if not outcome.credited]
        duplicates = [(row, held_elsewhere[row.event_id]) for row in rows if row.event_id in held_elsewhere]
        with self._engine.begin() as conn:
            credit_batches.mark_credit_batch_posted(conn, batch.credit_batch_id, self._clock())
            events.set_status(conn, batch.partner_id, [row.event_id for row, _ in failed], LEDGER_FAILED)
            activity_holders.record_held_elsewhere(conn, duplicates)
        refused = {row.event_id: activity_holders.as_held_elsewhere(row, holder) for row, holder in duplicates}
        refused.update({row.event_id: _refused(row, outcome) for row, outcome in failed})
        return refused

    def finish_owed(self, credit_batch_ids: list[str]) -> int:
        """Posts claimed credit batches that an earlier request left owed (their events read back from the store);
        returns how many events were posted."""
        if not credit_batch_ids:
            return 0
        with self._engine.connect() as conn:
            batches = credit_batches.pending_credit_batches(conn, len(credit_batch_ids), credit_batch_ids)
            owed = [(batch, events.find_events(conn, batch.partner_id, batch.event_ids)) for batch in batches]
        pending = [(batch, [row for row in rows.values() if row.status == PENDING]) for batch, rows in owed]
        for batch, rows in pending:
            self.post(batch, rows)
        return sum(len(rows) for _, rows in pending)

    def resume_pending(self, limit: int = 1000, min_age: timedelta = timedelta(0)) -> tuple[int, int]:
        """Posts the oldest credit batches still owed (left by a crash or by a gateway or ledger outage), at most
        `limit` of them and only those recorded at least `min_age` ago, so a sweep leaves a batch a live request is
        posting to that request. Returns how many batches and events were posted. Another replica posting the same
        batch at the same time credits nothing twice: the gateway answers an event's own claim as held, the ledger
        answers a transfer id it has as ALREADY_POSTED, and each status change applies only to a PENDING row."""
        with self._engine.connect() as conn:
            batches = credit_batches.pending_credit_batches(conn, limit, created_by=self._clock() - min_age)
        claimed = self._in_flight.claim(b.credit_batch_id for b in batches)
        try:
            return len(claimed), self.finish_owed(claimed)
        finally:
            self._in_flight.release(claimed)


def _refused(row: EventRow, outcome: CreditResult) -> EventRow:
    log.error("ledger refused an earn credit", extra={"transfer_id": row.transfer_id, "reason": outcome.failure_reason})
    message = f"{outcome.failure_reason}: {outcome.failure_message}"
    return row._replace(status=LEDGER_FAILED, reason=ev.LEDGER_REJECTED, message=message)
