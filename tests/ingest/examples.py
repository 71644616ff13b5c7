"""Values the ingest tests share: the catalog's rule book, a partner scope allowing every behaviour, a fixed now,
account numbers, valid events, and the rows a batch of them records next to the rows built plainly, column by column."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ingest_svc.domain.catalog import load_catalog
from ingest_svc.domain.event_rows import NO_CREDIT, PENDING, EventRow, event_rows
from ingest_svc.domain.events import Acceptance, AccountRef, Event, PartnerScope, ValidEvent, validate
from ingest_svc.domain.rules import RuleBook
from ingest_svc.domain.scoring import Score, score_events
from service_kit.accounts import new_account_number

CATALOG = load_catalog()
BOOK = RuleBook(CATALOG.behaviours, CATALOG.rules)
ALL = PartnerScope(frozenset(BOOK.behaviours), frozenset({"110000", "310000", "330000", "440300", "440100"}))
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)  # 12:00 CST
ACCOUNTS = [new_account_number("110000") for _ in range(7)]
ACCOUNT = ACCOUNTS[0]


def valid_events() -> list[ValidEvent]:
    out = []
    for n in range(60):
        behaviour = ["transit_trip", "bike_km", "green_appliance"][n % 3]
        event = Event(
            event_id=f"e-{n}" if n % 2 else f"e-{n}-电",
            account=AccountRef(ACCOUNTS[n % 3]),
            behaviour=behaviour,
            quantity_milli=1000 if behaviour != "bike_km" else 2500 + 777 * n,
            occurred_at=NOW - timedelta(hours=n % 30, microseconds=n),
            region_code="110000",
            evidence_ref=f"r/{n}" if n % 4 else "",
            tier="tier_3" if behaviour == "green_appliance" else "",
        )
        checked = validate(event, ALL, BOOK, NOW, Acceptance())
        assert isinstance(checked, ValidEvent), checked
        out.append(checked)
    return out


def plain_row(batch_id: str, partner_id: str, score: Score, now: datetime, credit_batch_id: str) -> dict[str, Any]:
    valid, event = score.event, score.event.event
    assert event.occurred_at is not None
    digest = hashlib.sha256(f"{partner_id}\x1f{event.event_id}".encode()).hexdigest()
    return {
        "partner_id": partner_id,
        "event_id": event.event_id,
        "batch_id": batch_id,
        "account_number": score.account_number,
        "behaviour": event.behaviour,
        "region_code": event.region_code,
        "occurred_at": event.occurred_at.astimezone(UTC),
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
        "transfer_id": f"earn-{int(now.timestamp() * 1000):011x}-{digest[:40]}",
        "status": PENDING if score.points > 0 else NO_CREDIT,
        "accepted_at": now.astimezone(UTC),
        "credit_batch_id": credit_batch_id if score.points > 0 else "",
    }


def rows_and_plain_rows() -> tuple[list[EventRow], list[dict[str, Any]]]:
    """The rows of scored events from five batches, and the same rows built plainly, column by column."""
    scores, _ = score_events([(v, ACCOUNTS[n % 3]) for n, v in enumerate(valid_events())], {})
    batch_ids = [f"b-{n // 13}" for n in range(len(scores))]
    now = NOW.astimezone(timezone(timedelta(hours=8)))
    rows = event_rows("bus-co", zip(batch_ids, scores, strict=True), now, "cb-1")
    plain = [plain_row(b, "bus-co", s, now, "cb-1") for b, s in zip(batch_ids, scores, strict=True)]
    return rows, plain


def event(behaviour: str = "transit_trip", quantity_milli: int = 1000, **changes: object) -> Event:
    base = Event(
        event_id="e-1",
        account=AccountRef(account_number=ACCOUNT),
        behaviour=behaviour,
        quantity_milli=quantity_milli,
        occurred_at=NOW - timedelta(hours=1),
        region_code="110000",
    )
    return base._replace(**changes)  # type: ignore[arg-type]


def valid(e: Event, book: RuleBook = BOOK) -> ValidEvent:
    result = validate(e, ALL, book, NOW, Acceptance())
    assert isinstance(result, ValidEvent), result
    return result
