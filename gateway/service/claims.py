"""Claiming activities for a region's credit batch in one transaction, and the conflicts ops read
(docs/adr/0606-activity-claims-at-the-gateway.md).

A batch's claims are one insert of the keys nobody holds; only when some key was held already (or repeated in the
batch) one read of the holders follows. Claims a batch repeats (two events of one activity) are inserted once, the
first in batch order, so the first event holds. Day partitions are
made before a day's first claim and old days dropped once a day, by whichever call first sees the new day.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import Engine

from gateway.domain.claims import (
    ATTEMPT_RETENTION,
    AttemptClaims,
    AttemptQuery,
    Claim,
    ClaimColumns,
    ConflictCount,
    Holder,
    Release,
    holds_own,
    retained_days,
)
from gateway.store import claims as store
from service_kit import access, identities
from service_kit.access import current_caller
from service_kit.clock import Clock, china_day, system_clock
from service_kit.errors import PermissionDenied, Unauthenticated

log = logging.getLogger("carbon.gateway.claims")


class ClaimAnswers(NamedTuple):
    holders: list[Holder | None]  # per claim: None when the claiming event holds the activity, else the holder
    # Claims made ahead of recording (ADR 0415) held by the same event under another attempt: to claim again once
    # recorded.
    other_attempts: list[int]


class ActivityClaims:
    def __init__(self, engine: Engine, retention_days: int, clock: Clock = system_clock) -> None:
        self._engine = engine
        self.retention_days = retention_days
        self._clock = clock
        self._days_made: set[date] = set()
        self._maintained_on: date | None = None
        self._lock = threading.Lock()

    def retained(self) -> tuple[date, date]:
        return retained_days(china_day(self._clock()), self.retention_days)

    def claim(self, region_code: str, batch: ClaimColumns) -> list[Holder | None]:
        """Per claim, in order: None when the claiming event holds the activity, else the event that does."""
        return self.answer(region_code, batch).holders

    def answer(self, region_code: str, batch: ClaimColumns) -> ClaimAnswers:
        """The claims' holders, and (claimed ahead of recording) which of them another attempt of the same event
        made. A recorded attempt takes its events' claims over."""
        self._maintain()
        self._make_days(set(batch.distinct_days.values()))
        now = self._clock()
        # A claim made as recorded is mostly a repeat of the event's own claim: it goes to the transaction below.
        if not batch.recorded and self._insert_all_new(region_code, batch, now):
            return ClaimAnswers([None] * batch.size, [])  # every claim was new: each event holds its own activity
        with self._engine.begin() as conn:
            # The attempt is kept for the claimant's sweep of claims an attempt never recorded (ADR 0416); once one
            # of its claims says recorded, the sweep leaves it.
            if batch.attempt_id and not batch.recorded:
                store.record_attempt(conn, region_code, batch, now)
            elif batch.attempt_id:
                store.mark_recorded(conn, region_code, batch.attempt_id)
            if store.insert_claims(conn, region_code, batch, now) == batch.size:
                return ClaimAnswers([None] * batch.size, [])  # every claim was new: each event holds its own activity
            held = store.holders(conn, batch)
            answers = [_answer(held[position][0], region_code, batch.claim(position)) for position in range(batch.size)]
            conflicts = [
                (batch.claim(position), holder) for position, holder in enumerate(answers) if holder is not None
            ]
            store.record_conflicts(conn, region_code, conflicts, now)
            others = [
                position
                for position, holder in enumerate(answers)
                if holder is None and batch.attempt_id and held[position][1] != batch.attempt_id
            ]
            if batch.recorded and others:
                store.adopt(conn, region_code, batch)
        return ClaimAnswers(answers, [] if batch.recorded else others)

    def _insert_all_new(self, region_code: str, batch: ClaimColumns, now: datetime) -> bool:
        """The common case in one round trip and one statement, no transaction around it; False when some claim is
        held or repeated (nothing was written)."""
        with self._engine.connect() as conn:
            if not store.claims_all_new_at_once(conn):
                return False
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            return store.insert_all_new(conn, region_code, batch, now)

    def release(self, region_code: str, claims: Release) -> int:
        """Gives up the claims an attempt made ahead of recording and did not record (ADR 0415)."""
        with self._engine.begin() as conn:
            return store.release(conn, region_code, claims)

    def attempts(self, region_code: str, query: AttemptQuery) -> list[AttemptClaims]:
        """The region's attempts that claimed ahead at least `query.min_age` ago (by this gateway's clock) and have
        not said they recorded, oldest first (ADR 0416)."""
        claimed_by = self._clock() - query.min_age
        with self._engine.connect() as conn:
            attempts = store.list_attempts(conn, region_code, claimed_by, query.after, query.page_size)
        # Only claims of days still kept: a release naming a dropped day would be refused, and there is nothing left
        # to release for it.
        first_kept = self.retained()[0].isoformat()
        return [_kept(attempt, first_kept) for attempt in attempts]

    def conflicts(self, first: date, last: date) -> list[ConflictCount]:
        with self._engine.connect() as conn:
            return store.conflict_counts(conn, first, last)

    def drop_old_days(self) -> int:
        """Drops the days past retention; returns how many day partitions went (PostgreSQL)."""
        first_kept = self.retained()[0]
        with self._engine.begin() as conn:
            dropped = store.drop_days_before(conn, first_kept)
            store.drop_attempts_before(conn, self._clock() - ATTEMPT_RETENTION)
        self._days_made = {day for day in self._days_made if day >= first_kept}
        return dropped

    def _make_days(self, days: set[date]) -> None:
        missing = days - self._days_made
        if not missing:
            return
        with self._engine.begin() as conn:
            store.ensure_partitions(conn, missing)
        with self._lock:
            self._days_made |= missing

    def _maintain(self) -> None:
        """Once per CST day per process: drop the days past retention."""
        today = china_day(self._clock())
        with self._lock:
            if self._maintained_on == today:
                return
            self._maintained_on = today
        dropped = self.drop_old_days()
        if dropped:
            log.info("dropped claim days past retention", extra={"partitions": dropped})


def _kept(attempt: AttemptClaims, first_kept: str) -> AttemptClaims:
    if min(attempt.days, default=first_kept) >= first_kept:
        return attempt
    kept = [(fp, day) for fp, day in zip(attempt.fingerprints, attempt.days, strict=True) if day >= first_kept]
    return attempt._replace(fingerprints=[fp for fp, _ in kept], days=[day for _, day in kept])


def _answer(holder: Holder, region_code: str, claim: Claim) -> Holder | None:
    return None if holds_own(holder, region_code, claim) else holder


def claimant_region(method: str) -> str:
    """The region of the ingest service calling `method` (its verified identity; never a request field), or
    UNAUTHENTICATED / PERMISSION_DENIED: the front door's external callers may not claim."""
    return internal_caller_region(method)


def internal_caller_region(method: str) -> str:
    """The region of the regional service calling one of the gateway's internal `method`s (its verified identity,
    allowed by service_kit.access.GATEWAY_ACCESS; never a request field), or UNAUTHENTICATED / PERMISSION_DENIED:
    the front door's external callers may not call them."""
    caller = current_caller()
    if not caller.identity:
        raise Unauthenticated(
            "SERVICE_IDENTITY_MISSING",
            "this method is called by a region's service identity (service token or mTLS)",
        )
    if not access.allowed_at_gateway(caller.identity, method):
        raise PermissionDenied(
            "CALLER_NOT_ALLOWED", f"{caller.identity} may not call {method}", {"caller": caller.identity}
        )
    return identities.parse(caller.identity).region_code
