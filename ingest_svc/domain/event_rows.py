"""What is recorded for an accepted event: its row (the score, what it owes the ledger and under which transfer id)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import NamedTuple

from ingest_svc.domain.events import new_tuple
from ingest_svc.domain.scoring import Score

# An event's status as written: PENDING (points owed to the ledger) or NO_CREDIT (zero points); LEDGER_FAILED when
# the ledger refused its credit. A PENDING event whose credit batch was posted reads CREDITED
# (docs/adr/0405-credit-batches-as-an-outbox.md).
PENDING, NO_CREDIT, CREDITED, LEDGER_FAILED = "PENDING", "NO_CREDIT", "CREDITED", "LEDGER_FAILED"


class EventRow(NamedTuple):
    """An accepted event as stored, fields in the events table's column order (the store writes and reads them by
    position). Times are aware, in UTC."""

    partner_id: str
    event_id: str
    batch_id: str
    account_number: str
    behaviour: str
    region_code: str
    occurred_at: datetime
    day: date
    quantity_milli: int
    tier: str
    evidence_ref: str
    rule_version_id: str
    counted_before_milli: int
    counted_milli: int
    points: int
    co2e_grams: int
    reason: str
    message: str
    transfer_id: str
    status: str
    accepted_at: datetime
    credit_batch_id: str


def transfer_id_for(partner_id: str, event_id: str, accepted_at: datetime) -> str:
    """The ledger transfer id of an accepted event: stored with its row and sent as stored, so a resubmission after a
    crash posts the same id (ledger idempotency). It starts with the acceptance time (milliseconds, fixed-width hex):
    ids arrive at the ledger in about the order its unique index sorts them, so each credit's index entry lands
    among the newest pages instead of at a random place in the whole index (ADR 0128); the digest of the partner
    and event makes it unique."""
    digest = hashlib.sha256(f"{partner_id}\x1f{event_id}".encode()).hexdigest()
    return f"earn-{int(accepted_at.timestamp() * 1000):011x}-{digest[:40]}"


def event_rows(
    partner_id: str, scored: Iterable[tuple[str, Score]], now: datetime, credit_batch_id: str
) -> list[EventRow]:
    """The row of each (batch id, score), in order: PENDING under `credit_batch_id` when it earned points.

    Built by position (new_tuple) in EventRow's field order, which tests pin against the table's columns.
    """
    accepted_at = now.astimezone(UTC)
    rows: list[EventRow] = []
    append = rows.append
    for batch_id, (valid, account_number, counted, points, grams, reason, message, before) in scored:
        event, _behaviour, rule, day = valid
        event_id = event.event_id
        occurred_at = event.occurred_at
        assert occurred_at is not None  # validation refuses an event without one
        owes = points > 0
        append(
            new_tuple(
                EventRow,
                (
                    partner_id,
                    event_id,
                    batch_id,
                    account_number,
                    event.behaviour,
                    event.region_code,
                    occurred_at.astimezone(UTC),
                    day,
                    event.quantity_milli,
                    event.tier,
                    event.evidence_ref,
                    rule.rule_version_id,
                    before,
                    counted,
                    points,
                    grams,
                    reason,
                    message,
                    transfer_id_for(partner_id, event_id, accepted_at),
                    PENDING if owes else NO_CREDIT,
                    accepted_at,
                    credit_batch_id if owes else "",
                ),
            )
        )
    return rows
