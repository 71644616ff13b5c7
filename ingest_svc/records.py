"""Rows of accepted events: what the store writes for a score, what the ledger is asked to credit, statistics."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ingest_svc import store
from ingest_svc.clients import EarnCredit
from ingest_svc.domain.events import ValidEvent
from ingest_svc.domain.scoring import Score


def transfer_id_for(partner_id: str, event_id: str) -> str:
    """Deterministic ledger transfer id: a resubmission after a crash posts the same id (ledger idempotency)."""
    digest = hashlib.sha256(f"{partner_id}\x1f{event_id}".encode()).hexdigest()
    return f"earn-{digest[:40]}"


def credits(rows: list[dict[str, Any]]) -> list[EarnCredit]:
    """What the ledger is asked to credit for stored rows; rows of one partner, behaviour and rule share one metadata
    mapping (never mutated), built once per batch instead of once per event."""
    shared: dict[tuple[str, str, str], dict[str, str]] = {}
    out = []
    for row in rows:
        key = (row["partner_id"], row["behaviour"], row["rule_version_id"])
        metadata = shared.get(key)
        if metadata is None:
            metadata = shared[key] = {"partner_id": key[0], "behaviour": key[1], "rule": key[2]}
        occurred_at = row["occurred_at"]
        out.append(
            EarnCredit(
                row["transfer_id"],
                row["account_number"],
                row["points"],
                occurred_at if occurred_at.tzinfo is UTC else store.utc(occurred_at),
                row["co2e_grams"],
                row["event_id"],
                metadata,
            )
        )
    return out


def when(valid: ValidEvent) -> datetime:
    assert valid.event.occurred_at is not None
    return valid.event.occurred_at


def rows(
    batch_ids: list[str], partner_id: str, scored: Iterable[tuple[int, Score]], now: datetime, credit_batch_id: str
) -> dict[int, dict[str, Any]]:
    """The store's row of each (index, score), by index; what every row of the batch shares is computed once."""
    accepted_at = now.astimezone(UTC)
    out: dict[int, dict[str, Any]] = {}
    for index, score in scored:
        valid = score.event
        event = valid.event
        credited = score.points > 0
        out[index] = {
            "partner_id": partner_id,
            "event_id": event.event_id,
            "batch_id": batch_ids[index],
            "account_number": score.account_number,
            "behaviour": event.behaviour,
            "region_code": event.region_code,
            "occurred_at": when(valid).astimezone(UTC),
            "day": valid.day,
            "quantity_milli": event.quantity_milli,
            "tier": event.tier,
            "evidence_ref": event.evidence_ref,
            "rule_version_id": valid.rule.rule_version_id,
            "counted_before_milli": score.counted_before_milli,
            "counted_milli": score.counted_milli,
            "points": score.points,
            "co2e_grams": score.co2e_grams,
            "reason": score.reason,
            "message": score.message,
            "transfer_id": transfer_id_for(partner_id, event.event_id),
            "status": store.PENDING if credited else store.NO_CREDIT,
            "accepted_at": accepted_at,
            "credit_batch_id": credit_batch_id if credited else "",
        }
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
