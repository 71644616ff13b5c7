"""Submission use cases: a signed batch of events -> one result per event, credited to the ledger exactly once.

Order per batch: partner + signature + rate limit (batch-level; small batches of one partner are then grouped, see
ingest_svc/coalescing.py) -> field validation (per event) -> duplicate fast path -> ONE identity call (consents as
columns; only bindings and phone numbers are resolved first) -> ONE local transaction (dedupe by the unique key,
caps, scores, statistics; events stored PENDING with one owed credit batch) -> ONE ledger PostCredits (credits as
columns, docs/adr/0408-columnar-calls-between-services.md) -> the credit batch marked POSTED. No transaction is
held open across a remote call. See docs/adr/0401-exactly-once-crediting.md and 0405-credit-batches-as-an-outbox.md.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from ingest_svc import admin, records, store
from ingest_svc.clients import ConsentQuestion, IdentityClient, LedgerClient
from ingest_svc.coalescing import Coalescer
from ingest_svc.domain import events as ev
from ingest_svc.domain.events import Acceptance, Event, Rejection, ValidEvent, new_tuple, validator
from ingest_svc.domain.partners import BURST_SECONDS, key_for_verification
from ingest_svc.domain.scoring import score_events
from ingest_svc.limits import Dedupe, SeenKey
from ingest_svc.records import EventRow
from ingest_svc.store import LEDGER_FAILED, PENDING
from service_kit.accounts import region_of
from service_kit.errors import InvalidArgument, NotFound, ResourceExhausted, Unauthenticated
from service_kit.partner_signing import signature_matches
from service_kit.ratelimit import Limiter

log = logging.getLogger("carbon.ingest")

MAX_BATCH_EVENTS = 5000
# Batches this small are grouped with concurrent ones of the same partner (see ingest_svc/coalescing.py).
COALESCE_MAX_EVENTS = 64
RACE_RETRIES = 3
ACCEPTED, DUPLICATE, REJECTED = "ACCEPTED", "DUPLICATE", "REJECTED"
CRASH_ENV = "CARBON_TEST_CRASH_AT"


@dataclass(frozen=True)
class Batch:
    partner_id: str
    batch_id: str
    events: Sequence[Event]
    key_id: str
    signature: str
    canonical: bytes  # the signed bytes (service_kit.partner_signing.canonical_bytes)


class Result(NamedTuple):
    """A named tuple, not a frozen dataclass: one per event, and the dataclass's __init__ cost ~4x as much."""

    event_id: str
    outcome: str
    points: int = 0
    co2e_grams: int = 0
    transfer_id: str = ""
    reason: str = ""
    message: str = ""
    first_outcome: str = ""


@dataclass(frozen=True)
class _Admitted:
    """A batch that passed the whole-batch checks, with its partner and the time it arrived."""

    batch: Batch
    partner: admin.Partner
    now: datetime


class _Race(Exception):
    """A concurrent batch inserted one of our event ids or cap counters between our read and our write: redo the
    transaction."""


def _crash_point(name: str) -> None:
    """Fault-test hook: CARBON_TEST_CRASH_AT=<name> kills the process here, as a power cut would."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(86)


def _repeat_of(first: Result | None) -> Result:
    """The answer to an event that another batch of the same group carried first: what a later submission of it
    would have been told (a DUPLICATE of an accepted event, else the same answer)."""
    assert first is not None
    if first.outcome != ACCEPTED:
        return first
    return Result(
        first.event_id,
        DUPLICATE,
        first.points,
        first.co2e_grams,
        first.transfer_id,
        ev.DUPLICATE_EVENT,
        "submitted concurrently with its first submission",
        first_outcome=ACCEPTED,
    )


def _result_of(row: EventRow) -> Result:
    """The result a stored event was given (REJECTED when the ledger refused its credit)."""
    # Result(...) without its generated __new__ (domain.events.new_tuple): one per accepted event of every batch.
    return new_tuple(
        Result,
        (
            row.event_id,
            ACCEPTED if row.status != LEDGER_FAILED else REJECTED,
            row.points,
            row.co2e_grams,
            row.transfer_id if row.points else "",
            row.reason,
            row.message,
            "",
        ),
    )


def _duplicate(row: dict[str, Any]) -> Result:
    first = ACCEPTED if row["status"] != LEDGER_FAILED else REJECTED
    return Result(
        event_id=row["event_id"],
        outcome=DUPLICATE,
        points=row["points"],
        co2e_grams=row["co2e_grams"],
        transfer_id=row["transfer_id"],
        reason=ev.DUPLICATE_EVENT,
        message=f"first accepted at {store.utc(row['accepted_at']).isoformat()}",
        first_outcome=first,
    )


class Submissions:
    def __init__(
        self,
        engine: Engine,
        rules: admin.Rules,
        partners: admin.Partners,
        identity: IdentityClient,
        ledger: LedgerClient,
        dedupe: Dedupe,
        rate_limiter: Limiter,
        clock: Callable[[], datetime],
        acceptance: Acceptance,
        region_code: str = "",
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._partners = partners
        self._identity = identity
        self._ledger = ledger
        self._dedupe = dedupe
        self._rate = rate_limiter
        self._clock = clock
        self._acceptance = acceptance
        self._region_code = region_code  # "" accepts accounts of any region (tests of the domain only)
        # Credit batches this process is posting right now: a concurrent duplicate leaves them to their first request
        # instead of posting the same transfers twice at once (a crash empties it; then the resubmission re-posts).
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()
        self._coalescer: Coalescer[_Admitted, list[Result]] = Coalescer(self._process, max_size=MAX_BATCH_EVENTS)

    def submit(self, batch: Batch) -> list[Result]:
        admitted = self._admit(batch)
        if len(batch.events) <= COALESCE_MAX_EVENTS:
            return self._coalescer.submit(admitted.partner.partner_id, admitted, len(batch.events))
        return self._process([admitted])[0]

    def _admit(self, batch: Batch) -> _Admitted:
        """The checks of a batch as a whole: size, signature, rate limit (each raises for the whole batch)."""
        now = self._clock()
        if len(batch.events) > MAX_BATCH_EVENTS:
            raise InvalidArgument("events", f"at most {MAX_BATCH_EVENTS} events per batch", reason="BATCH_TOO_LARGE")
        partner = self._authenticate(batch, now)
        if not self._within_rate(partner.partner_id, partner.rate_limit_per_second, len(batch.events), now):
            raise ResourceExhausted(
                "RATE_LIMITED", f"partner {partner.partner_id} is over {partner.rate_limit_per_second} events/s"
            )
        return _Admitted(batch, partner, now)

    def _process(self, group: Sequence[_Admitted]) -> list[list[Result]]:
        """Admitted batches of one partner, processed as one: one result list per batch, in order."""
        partner = group[0].partner
        now = self._clock()
        book = self._rules.book()
        scope = partner.scope  # built per call (two frozensets): once per group, not per event
        owners: list[int] = []  # index -> its batch's position in the group
        batch_ids: list[str] = []
        for n, admitted in enumerate(group):
            owners += [n] * len(admitted.batch.events)
            batch_ids += [admitted.batch.batch_id] * len(admitted.batch.events)
        results: list[Result | None] = [None] * len(owners)
        valid: dict[int, ValidEvent] = {}
        seen_keys: list[SeenKey] = []  # (event id, day) of each valid event, for the dedupe accelerator
        first_index: dict[str, int] = {}
        repeats: dict[int, int] = {}  # index -> the same event's first index, in another batch of the group
        index = 0
        for n, admitted in enumerate(group):
            check = validator(scope, book, admitted.now, self._acceptance)
            for event in admitted.batch.events:
                checked = check(event)
                event_id = event.event_id
                if isinstance(checked, Rejection):
                    results[index] = Result(event_id, REJECTED, reason=checked.reason, message=checked.message)
                elif event_id in first_index:
                    first = first_index[event_id]
                    if owners[first] != n:
                        repeats[index] = first
                    results[index] = Result(
                        event_id, DUPLICATE, reason=ev.DUPLICATE_EVENT, message="repeated within the batch"
                    )
                else:
                    first_index[event_id] = index
                    valid[index] = checked
                    seen_keys.append((event_id, checked.day))
                index += 1
        # Fast path: events the accelerator has seen skip identity; the database gives their first result.
        seen = self._dedupe.seen(partner.partner_id, seen_keys)
        known: dict[int, dict[str, Any]] = {}
        if seen:
            fresh = [i for i in valid if valid[i].event.event_id not in seen]
            with self._engine.connect() as conn:
                known_rows = store.find_events(conn, partner.partner_id, sorted(seen))
            known = {i: known_rows[valid[i].event.event_id] for i in valid if valid[i].event.event_id in known_rows}
            fresh += [i for i in valid if valid[i].event.event_id in seen and i not in known]
            fresh.sort()
        else:
            fresh = list(valid)  # in index order
        accounts = self._resolve_and_check_consent(fresh, valid, results)
        # Nothing of this batch seen before: insert without looking first (a conflict redoes it with the look).
        optimistic = not seen
        scored, duplicates = self._record(
            batch_ids, partner.partner_id, list(accounts), valid, accounts, now, optimistic
        )
        duplicates.update(known)
        for index, found in duplicates.items():
            results[index] = _duplicate(found)
        own = [row for row in scored.values() if row.status == PENDING]
        # Events of other credit batches still owed (a crash before their ledger call): their batches are finished
        # whole, so a partial resubmission never leaves part of a batch owed behind a POSTED marker.
        owed = sorted({found["credit_batch_id"] for found in duplicates.values() if found["status"] == PENDING})
        claimed = self._claim(owed)
        refused: dict[str, EventRow] = {}
        try:
            if own:
                refused = self._finish(store.CreditBatch(own[0].credit_batch_id, partner.partner_id, []), own)
            self._finish_owed(claimed)
        finally:
            self._release(claimed + ([own[0].credit_batch_id] if own else []))
        for index, row in scored.items():
            results[index] = _result_of(refused.get(row.event_id, row) if refused else row)
        self._dedupe.remember(partner.partner_id, [(row.event_id, row.day) for row in scored.values()])
        for index, first in repeats.items():
            results[index] = _repeat_of(results[first])
        assert None not in results, "every event has exactly one result"
        out: list[list[Result]] = [[] for _ in group]
        for owner, result in zip(owners, cast(list[Result], results), strict=True):
            out[owner].append(result)
        return out

    def _within_rate(self, partner_id: str, rate_per_second: int, events: int, now: datetime) -> bool:
        """A partner's events per second, with BURST_SECONDS of burst; 0 means unlimited."""
        if rate_per_second <= 0:
            return True
        burst = rate_per_second * BURST_SECONDS
        return self._rate.allow(partner_id, rate_per_second, burst, cost=events, now_s=now.timestamp())

    def _authenticate(self, batch: Batch, now: datetime) -> admin.Partner:
        try:
            return self._verify(batch, now, fresh=False)
        except Unauthenticated:
            # The cache may predate a new partner or key (registered or rotated by another replica): look again.
            return self._verify(batch, now, fresh=True)

    def _verify(self, batch: Batch, now: datetime, fresh: bool) -> admin.Partner:
        partner, keys = self._partners.for_verification(batch.partner_id, fresh)
        if partner is None or not partner.active:
            raise Unauthenticated("UNKNOWN_PARTNER", "partner_id: unknown or inactive partner")
        key = key_for_verification(keys, batch.key_id, now)
        if key is None:
            raise Unauthenticated("UNKNOWN_KEY", "key_id: not a valid signing key of this partner (expired?)")
        if not signature_matches(key.secret, batch.canonical, batch.signature):
            raise Unauthenticated("BAD_SIGNATURE", "signature: does not match the batch")
        return partner

    def _resolve_and_check_consent(
        self, fresh: list[int], valid: dict[int, ValidEvent], results: list[Result | None]
    ) -> dict[int, str]:
        """Index -> account number for events whose account exists and whose owner consented at the event's time.

        Only channel bindings and phone numbers are resolved first: an account number goes straight to the consent
        check, which also answers UNKNOWN_ACCOUNT and ACCOUNT_CLOSED (one identity call instead of two per batch).
        """
        by_reference: list[int] = []
        numbers: dict[int, str] = {}
        for index in fresh:
            number = valid[index].event.account.account_number
            if number:
                numbers[index] = number
            else:
                by_reference.append(index)
        resolved = self._identity.resolve([valid[i].event.account for i in by_reference])
        for index, account in zip(by_reference, resolved, strict=True):
            if not account.account_number:
                results[index] = self._rejected(valid[index], ev.UNKNOWN_ACCOUNT)
            elif account.closed:
                results[index] = self._rejected(valid[index], ev.ACCOUNT_CLOSED)
            else:
                numbers[index] = account.account_number
        order: list[int] = []  # the indexes of the accounts in this region, in index order
        questions: list[ConsentQuestion] = []
        for index in sorted(numbers):
            number = numbers[index]
            home = region_of(number)
            if self._region_code and home != self._region_code:
                results[index] = Result(
                    valid[index].event.event_id,
                    REJECTED,
                    reason=ev.ACCOUNT_NOT_IN_REGION,
                    message=f"account: its home region is {home}, "
                    f"not this platform's {self._region_code}; submit it to its home region",
                )
            else:
                order.append(index)
                questions.append(ConsentQuestion(number, valid[index].behaviour.category, records.when(valid[index])))
        answers = self._identity.check_consents(questions)
        allowed: dict[int, str] = {}
        for index, answer in zip(order, answers, strict=True):
            if answer.allowed:
                allowed[index] = numbers[index]
            elif answer.reason in (ev.UNKNOWN_ACCOUNT, ev.ACCOUNT_CLOSED):
                results[index] = self._rejected(valid[index], answer.reason)
            else:
                category = valid[index].behaviour.category
                results[index] = Result(
                    valid[index].event.event_id,
                    REJECTED,
                    reason=ev.CONSENT_MISSING,
                    message=f"no {category} consent at the event's time ({answer.reason or 'not granted'})",
                )
        return allowed

    @staticmethod
    def _rejected(valid: ValidEvent, reason: str) -> Result:
        message = "account: not found" if reason == ev.UNKNOWN_ACCOUNT else "account: closed"
        return Result(valid.event.event_id, REJECTED, reason=reason, message=message)

    def _record(
        self,
        batch_ids: list[str],
        partner_id: str,
        indexes: list[int],
        valid: dict[int, ValidEvent],
        accounts: dict[int, str],
        now: datetime,
        optimistic: bool,
    ) -> tuple[dict[int, EventRow], dict[int, dict[str, Any]]]:
        """One transaction: duplicates by the unique key, caps, scores, statistics. Returns (scored, duplicates).

        Optimistic: the first attempt skips the look-up of existing events and writes them by COPY; if one exists
        after all, the transaction rolls back (nothing of it stays) and the next attempt looks first, as a
        concurrent race does. A race on a new cap counter redoes the transaction the same way.
        """
        for attempt in range(RACE_RETRIES + optimistic):
            claimed: list[str] = []
            looked = not (optimistic and attempt == 0)
            try:
                with self._engine.begin() as conn:
                    duplicates: dict[int, dict[str, Any]] = {}
                    if looked:
                        ids = [valid[i].event.event_id for i in indexes]
                        existing = store.find_events(conn, partner_id, ids)
                        duplicates = {
                            i: existing[valid[i].event.event_id] for i in indexes if valid[i].event.event_id in existing
                        }
                    new = [i for i in indexes if i not in duplicates and i in accounts]
                    pairs = [(valid[i], accounts[i]) for i in new]
                    counted = store.lock_cap_counters(conn, [(a, v.rule.behaviour, v.day) for v, a in pairs])
                    scores, totals = score_events(pairs, counted)
                    credit_batch_id = uuid.uuid4().hex
                    rows = records.rows(batch_ids, partner_id, zip(new, scores, strict=True), now, credit_batch_id)
                    inserted = store.insert_events(conn, list(rows.values()), surely_new=not looked)
                    if len(inserted) != len(rows) or not store.write_cap_counters(conn, counted, totals):
                        raise _Race()
                    owed = [r.event_id for r in rows.values() if r.status == PENDING]
                    if owed:
                        store.insert_credit_batch(conn, store.CreditBatch(credit_batch_id, partner_id, owed), now)
                    store.add_statistics(conn, records.statistics(scores))
                    # Claimed before the commit makes it visible, so no concurrent duplicate re-posts it.
                    claimed = self._claim([credit_batch_id] if owed else [])
                _crash_point("after_commit")
                return rows, duplicates
            except (_Race, IntegrityError) as race:
                self._release(claimed)
                if isinstance(race, IntegrityError) and looked:
                    raise
                log.info("event id or cap counter race, retrying", extra={"partner_id": partner_id, "attempt": attempt})
            except BaseException:
                self._release(claimed)
                raise
        raise ResourceExhausted("CONTENTION", "the same events are being submitted concurrently; retry")

    def _claim(self, credit_batch_ids: list[str]) -> list[str]:
        """The credit batches this process is not posting already, now marked as being posted."""
        with self._in_flight_lock:
            free = [batch_id for batch_id in credit_batch_ids if batch_id not in self._in_flight]
            self._in_flight.update(free)
        return free

    def _release(self, credit_batch_ids: list[str]) -> None:
        with self._in_flight_lock:
            self._in_flight.difference_update(credit_batch_ids)

    def _finish_owed(self, credit_batch_ids: list[str]) -> int:
        """Posts claimed credit batches that an earlier request left owed (their events read back from the store);
        returns how many events were posted."""
        if not credit_batch_ids:
            return 0
        with self._engine.connect() as conn:
            batches = store.pending_credit_batches(conn, len(credit_batch_ids), credit_batch_ids)
            owed = [(b, store.find_events(conn, b.partner_id, b.event_ids)) for b in batches]
        pending = [
            (batch, [records.stored_row(r) for r in rows.values() if r["status"] == PENDING]) for batch, rows in owed
        ]
        for batch, rows in pending:
            self._finish(batch, rows)
        return sum(len(rows) for _, rows in pending)

    def _finish(self, batch: store.CreditBatch, rows: list[EventRow]) -> dict[str, EventRow]:
        """One ledger call for a credit batch's events, then one short transaction marks the batch POSTED. Returns
        the rows the ledger refused, by event id, as they now read (LEDGER_FAILED with the ledger's reason)."""
        outcomes = self._ledger.credit(records.credits(rows))
        _crash_point("after_ledger")
        # The client answers in the order of the credits, one per row (no look-up by transfer id needed).
        failed = [(row, outcome) for row, outcome in zip(rows, outcomes, strict=True) if not outcome.credited]
        with self._engine.begin() as conn:
            store.mark_credit_batch_posted(conn, batch.credit_batch_id, self._clock())
            store.set_status(conn, batch.partner_id, [row.event_id for row, _ in failed], LEDGER_FAILED)
        refused: dict[str, EventRow] = {}
        for row, outcome in failed:
            refused[row.event_id] = row._replace(
                status=LEDGER_FAILED,
                reason=ev.LEDGER_REJECTED,
                message=f"{outcome.failure_reason}: {outcome.failure_message}",
            )
            log.error(
                "ledger refused an earn credit",
                extra={"transfer_id": row.transfer_id, "reason": outcome.failure_reason},
            )
        return refused

    def resume_pending(self, limit: int = 1000) -> int:
        """Posts credit batches left owed by a crash (startup recovery); returns how many events were posted."""
        with self._engine.connect() as conn:
            batches = store.pending_credit_batches(conn, limit)
        claimed = self._claim([b.credit_batch_id for b in batches])
        try:
            return self._finish_owed(claimed)
        finally:
            self._release(claimed)

    def explain(self, partner_id: str, event_id: str) -> tuple[Result, dict[str, Any], admin.RuleVersion | None]:
        with self._engine.connect() as conn:
            found = store.find_events(conn, partner_id, [event_id])
        row = found.get(event_id)
        if row is None:
            raise NotFound("EVENT_NOT_FOUND", f"event_id: no accepted event {event_id!r} from {partner_id!r}")
        return _result_of(records.stored_row(row)), row, self._rules.by_id(row["rule_version_id"])
