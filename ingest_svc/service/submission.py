"""Submitting events: a signed batch -> one result per event, each accepted event credited to the ledger once.

A batch is first admitted as a whole (admission.py: size, signature, rate limit); small batches of one partner are
then grouped (coalescing.py, docs/adr/0406-group-commit-for-small-submissions.md). A group goes through six phases:
validate each event, skip events known before (the dedupe accelerator, confirmed by the store), check consent (ONE
identity call), record (ONE local transaction), credit (ONE ledger call), and assemble each batch's results. No
transaction is held open across a remote call (docs/adr/0401-exactly-once-crediting.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Engine

from ingest_svc.domain.batches import Candidate, CheckedGroup, Submitted, assemble, check_group
from ingest_svc.domain.event_rows import EventRow
from ingest_svc.domain.events import Acceptance, validator
from ingest_svc.domain.results import Result, duplicate_of, recorded
from ingest_svc.service.admission import MAX_BATCH_EVENTS, Admission, Admitted, Batch
from ingest_svc.service.consent import ConsentCheck
from ingest_svc.service.crediting import Crediting
from ingest_svc.service.metrics import IngestMetrics
from ingest_svc.service.recording import Recorded, Recorder
from ingest_svc.service.rules import Rules
from ingest_svc.store import events
from ingest_svc.store.dedupe import Dedupe
from service_kit.clock import Clock
from service_kit.coalescing import Coalescer

# Batches this small are grouped with concurrent ones of the same partner.
COALESCE_MAX_EVENTS = 64


class Known(NamedTuple):
    """The skip-known phase's answer: whether the accelerator had seen any candidate, and the stored rows."""

    any_seen: bool
    rows: dict[str, EventRow]


class Submissions:
    def __init__(
        self,
        engine: Engine,
        rules: Rules,
        admission: Admission,
        consent: ConsentCheck,
        recorder: Recorder,
        crediting: Crediting,
        dedupe: Dedupe,
        clock: Clock,
        acceptance: Acceptance,
        region_code: str = "",
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._admission = admission
        self._consent = consent
        self._recorder = recorder
        self._crediting = crediting
        self._dedupe = dedupe
        self._clock = clock
        self._acceptance = acceptance
        self._coalescer: Coalescer[Admitted, list[Result]] = Coalescer(self.process, max_size=MAX_BATCH_EVENTS)
        self._metrics = IngestMetrics(region_code)

    def submit(self, batch: Batch) -> list[Result]:
        admitted = self._admission.admit(batch)
        partner_id = admitted.partner.partner_id
        if len(batch.events) <= COALESCE_MAX_EVENTS:
            results = self._coalescer.submit(partner_id, admitted, len(batch.events))
        else:
            results = self.process([admitted])[0]
        self._metrics.answered(partner_id, results)
        return results

    def process(self, group: Sequence[Admitted]) -> list[list[Result]]:
        """Admitted batches of one partner, processed as one: one result list per batch, in order."""
        partner_id = group[0].partner.partner_id
        now = self._clock()
        batches = self._validators(group)
        checked = check_group(batches)
        known = self._skip_known(partner_id, checked)
        outcomes = {event_id: duplicate_of(row) for event_id, row in known.rows.items()}
        fresh = _without(checked.candidates, known.rows)
        owners = self._consent.owners(fresh, outcomes)
        # The claims travel while the record transaction writes (ADR 0415), under the credit batch id it will use.
        credit_batch_id = uuid.uuid4().hex
        ahead = self._crediting.claim_ahead(partner_id, owners, credit_batch_id)
        try:
            # Nothing of this group seen before: insert without looking first (a conflict redoes it with the look).
            written = self._recorder.record(partner_id, owners, now, not known.any_seen, credit_batch_id)
        except BaseException:
            self._crediting.release_ahead(ahead)
            raise
        stored_before = {**known.rows, **written.duplicates}
        refused = self._crediting.settle(written.credit_batch, written.rows, stored_before, ahead)
        _add_recorded(outcomes, written, refused)
        self._dedupe.remember(partner_id, [(row.event_id, row.day) for row in written.rows])
        return assemble(batches, checked, outcomes)

    def _validators(self, group: Sequence[Admitted]) -> list[Submitted]:
        """Each batch with the validator of the moment it arrived (the partner's scope and the rule book shared)."""
        book = self._rules.book()
        scope = group[0].partner.scope
        return [
            Submitted(a.batch.batch_id, a.batch.events, validator(scope, book, a.now, self._acceptance)) for a in group
        ]

    def _skip_known(self, partner_id: str, checked: CheckedGroup) -> Known:
        """Candidates the accelerator has seen skip identity; the store gives their first result (a miss of either
        only costs the slower path: the record phase finds them)."""
        keys = [(event_id, c.valid.day) for event_id, c in checked.candidates.items()]
        seen = self._dedupe.seen(partner_id, keys)
        if not seen:
            return Known(False, {})
        with self._engine.connect() as conn:
            return Known(True, events.find_events(conn, partner_id, sorted(seen)))


def _without(candidates: dict[str, Candidate], known: dict[str, EventRow]) -> dict[str, Candidate]:
    if not known:
        return candidates
    return {event_id: c for event_id, c in candidates.items() if event_id not in known}


def _add_recorded(outcomes: dict[str, Result], written: Recorded, refused: dict[str, EventRow]) -> None:
    """The outcomes of the record and credit phases: duplicates found by the store, then each new event's result
    (as the ledger left it)."""
    for event_id, row in written.duplicates.items():
        outcomes[event_id] = duplicate_of(row)
    for row in written.rows:
        outcomes[row.event_id] = recorded(refused.get(row.event_id, row) if refused else row)
