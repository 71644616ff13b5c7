"""Explaining a stored event's score: the rule version that scored it, its factor and source, the cap state of its
CST day, and the arithmetic in words."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from ingest_svc.domain.event_rows import EventRow
from ingest_svc.domain.events import DUPLICATE_ACTIVITY
from ingest_svc.domain.fingerprints import ActivityHolder
from ingest_svc.domain.results import Result, recorded
from ingest_svc.domain.scoring import points_per_unit
from ingest_svc.service.rules import Rules
from ingest_svc.store import activity_holders, events
from service_kit.errors import NotFound

# Only events whose owner consented are stored, so a stored event's consent was in force.
CONSENT_IN_FORCE = "consent for the behaviour's data category was in force at the event's time"


@dataclass(frozen=True)
class Explanation:
    result: Result
    row: EventRow
    consent_reason: str
    # From the rule version that scored it (zero or empty if that version is gone).
    points_per_unit: int
    co2e_factor: str
    co2e_source: str
    cap_per_day: int
    text: str
    # The catalog's consent category for the behaviour (PIPL: consent per scenario); "" if it left the catalog.
    consent_category: str = ""
    holder: ActivityHolder | None = None  # for DUPLICATE_ACTIVITY: the event that holds the activity


def explain(engine: Engine, rules: Rules, partner_id: str, event_id: str) -> Explanation:
    with engine.connect() as conn:
        row = events.find_events(conn, partner_id, [event_id]).get(event_id)
        held_elsewhere = row is not None and row.reason == DUPLICATE_ACTIVITY
        holder = activity_holders.holder_of(conn, partner_id, event_id) if held_elsewhere else None
    if row is None:
        raise NotFound("EVENT_NOT_FOUND", f"event_id: no accepted event {event_id!r} from {partner_id!r}")
    rule = rules.by_id(row.rule_version_id)
    per_unit, factor, source, cap = 0, "", "", 0
    if rule is not None:
        per_unit, factor, source, cap = (
            points_per_unit(rule, row.tier),
            rule.co2e_factor_text(),
            rule.co2e_source,
            rule.daily_cap_milli,
        )
    text = (
        f"{row.behaviour} x {row.quantity_milli}/1000 scored by {row.rule_version_id}: "
        f"{row.counted_before_milli} counted earlier that CST day ({row.day}), cap {cap}, "
        f"counted {row.counted_milli} -> {row.points} points, {row.co2e_grams} g CO2e"
        + (f"; {row.reason}" if row.reason else "")
    )
    behaviour = rules.book().behaviours.get(row.behaviour)
    category = behaviour.category if behaviour is not None else ""
    consent = f"{category} {CONSENT_IN_FORCE}" if category else CONSENT_IN_FORCE
    return Explanation(recorded(row), row, consent, per_unit, factor, source, cap, text, category, holder)
