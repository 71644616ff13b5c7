"""Rows of accepted events: what the store writes for a score, what the ledger is asked to credit, statistics."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from ingest_svc import store
from ingest_svc.clients import EarnCredit
from ingest_svc.domain.events import ValidEvent, new_tuple
from ingest_svc.domain.scoring import Score


class EventRow(NamedTuple):
    """A new event's row as the store writes it, fields in the table's column order (store_pg's COPY line).

    A named tuple, not a dict: one per accepted event, read back by position when the COPY line, the ledger's
    credits and the results are built (a 22-key dict per event was built only to be looked up key by key).
    """

    partner_id: str
    event_id: str
    batch_id: str
    account_number: str
    behaviour: str
    region_code: str
    occurred_at: datetime  # aware, UTC
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
    accepted_at: datetime  # aware, UTC
    credit_batch_id: str


def transfer_id_for(partner_id: str, event_id: str) -> str:
    """Deterministic ledger transfer id: a resubmission after a crash posts the same id (ledger idempotency)."""
    digest = hashlib.sha256(f"{partner_id}\x1f{event_id}".encode()).hexdigest()
    return f"earn-{digest[:40]}"


def credits(rows: Iterable[EventRow]) -> list[EarnCredit]:
    """What the ledger is asked to credit for stored rows; rows of one partner, behaviour and rule share one metadata
    mapping (never mutated), built once per batch instead of once per event."""
    shared: dict[tuple[str, str, str], dict[str, str]] = {}
    out: list[EarnCredit] = []
    append = out.append
    for row in rows:
        key = (row.partner_id, row.behaviour, row.rule_version_id)
        metadata = shared.get(key)
        if metadata is None:
            metadata = shared[key] = {"partner_id": key[0], "behaviour": key[1], "rule": key[2]}
        occurred_at = row.occurred_at
        append(
            new_tuple(
                EarnCredit,
                (
                    row.transfer_id,
                    row.account_number,
                    row.points,
                    occurred_at if occurred_at.tzinfo is UTC else store.utc(occurred_at),
                    row.co2e_grams,
                    row.event_id,
                    metadata,
                ),
            )
        )
    return out


def stored_row(row: Mapping[str, Any]) -> EventRow:
    """A row read back from the store (store.find_events) as an EventRow."""
    return EventRow._make([row[name] for name in EventRow._fields])


def when(valid: ValidEvent) -> datetime:
    assert valid.event.occurred_at is not None
    return valid.event.occurred_at


def rows(
    batch_ids: list[str], partner_id: str, scored: Iterable[tuple[int, Score]], now: datetime, credit_batch_id: str
) -> dict[int, EventRow]:
    """The store's row of each (index, score), by index; what every row of the batch shares is computed once."""
    accepted_at = now.astimezone(UTC)
    pending, no_credit = store.PENDING, store.NO_CREDIT
    out: dict[int, EventRow] = {}
    for index, (valid, account_number, counted, points, grams, reason, message, before) in scored:
        event, _behaviour, rule, day = valid
        event_id = event.event_id
        occurred_at = event.occurred_at
        assert occurred_at is not None
        out[index] = new_tuple(
            EventRow,
            (
                partner_id,
                event_id,
                batch_ids[index],
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
                transfer_id_for(partner_id, event_id),
                pending if points > 0 else no_credit,
                accepted_at,
                credit_batch_id if points > 0 else "",
            ),
        )
    return out


def statistics(scores: list[Score]) -> list[dict[str, Any]]:
    totals: dict[tuple[str, str, Any], list[int]] = {}
    for score in scores:
        key = (score.event.event.region_code, score.event.rule.behaviour, score.event.day)
        entry = totals.setdefault(key, [0, 0, 0])
        entry[0] += 1
        entry[1] += score.points
        entry[2] += score.co2e_grams
    return [
        {"region_code": r, "behaviour": b, "day": d, "events": n, "points": p, "co2e_grams": g}
        for (r, b, d), (n, p, g) in totals.items()
    ]
