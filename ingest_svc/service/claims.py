"""The claim step of the credit outbox: before a credit batch goes to the ledger, its events' activity fingerprints
are claimed at the national gateway in ONE call (docs/adr/0413-claims-in-the-credit-outbox.md). An event whose
activity another event holds is recorded DUPLICATE_ACTIVITY with 0 points and is not credited.

Without a gateway address claims are off (each region alone, as before issue 16); a gateway without a fingerprint key
is a configuration error, found at start."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

from ingest_svc.clients import ClaimAnswers, ClaimColumns, GatewayClient
from ingest_svc.domain.event_rows import EventRow
from ingest_svc.domain.fingerprints import (
    Activity,
    ActivityFields,
    ActivityHolder,
    FingerprintColumns,
    FingerprintError,
    FingerprintKeys,
    FingerprintSpec,
    fingerprint_columns,
)
from ingest_svc.service.consent import Owned
from service_kit.errors import DomainError
from service_kit.settings import Settings, SettingsError

log = logging.getLogger("carbon.ingest")

FINGERPRINT_KEYS_SECRET = "activity_fingerprint_keys"


@dataclass(frozen=True)
class ClaimAhead:
    """A claim sent while its events are being recorded (docs/adr/0415-claims-ahead-of-recording.md), under the
    attempt id the record transaction uses as its credit batch id."""

    attempt_id: str
    positions: dict[str, int]  # event id -> position in the claim
    fingerprints: FingerprintColumns
    answers: Callable[[], ClaimAnswers]


class ActivityClaims:
    def __init__(
        self, gateway: GatewayClient | None, specs: Mapping[str, FingerprintSpec], keys: FingerprintKeys | None
    ) -> None:
        if gateway is not None and keys is None:
            raise SettingsError("activity claims need the national fingerprint keys")
        self._gateway = gateway
        self._specs = specs
        self._keys = keys

    @property
    def on(self) -> bool:
        return self._gateway is not None

    @property
    def gateway(self) -> GatewayClient | None:
        """The gateway claims go to (None: claims off), for the sweep of claims left behind (ADR 0416)."""
        return self._gateway

    def claim(self, rows: Sequence[EventRow], attempt_id: str = "") -> dict[str, ActivityHolder]:
        """The rows whose activity another event holds, by event id, with that holder (empty when claims are off).
        The rows are recorded: under `attempt_id` (their credit batch) they take over their claims from any other
        attempt of theirs. UNAVAILABLE when the gateway does not answer: nothing was credited, the batch stays owed."""
        if self._gateway is None or self._keys is None or not rows:
            return {}
        answers = self._gateway.claim(self._columns(rows), attempt_id, recorded=bool(attempt_id))
        return {row.event_id: holder for row, holder in zip(rows, answers.holders, strict=True) if holder is not None}

    def ahead(self, partner_id: str, owned: Mapping[str, Owned], attempt_id: str) -> ClaimAhead | None:
        """Sends the claims of the owned candidates (by event id) before they are recorded, under `attempt_id`;
        None when claims are off or nothing is owned. Whatever the attempt does not record as owing credit must be
        released (`settle_ahead`, `release_ahead`)."""
        if self._gateway is None or self._keys is None or not owned:
            return None
        activities: list[Activity] = [
            ActivityFields(
                c.valid.event.behaviour,
                c.valid.event.evidence_ref,
                account_number,
                c.valid.day,
                c.valid.event.occurred_at,  # type: ignore[arg-type]  # validation requires it; hashed as UTC
                c.valid.event.tier,
            )
            for c, account_number in owned.values()
        ]
        fingerprints = fingerprint_columns(self._specs, self._keys, activities)
        columns = ClaimColumns(
            fingerprints.digests, fingerprints.key_ids, fingerprints.days, [partner_id] * len(owned), list(owned)
        )
        answers = self._gateway.start_claim(columns, attempt_id)
        return ClaimAhead(attempt_id, {event_id: n for n, event_id in enumerate(owned)}, fingerprints, answers)

    def settle_ahead(self, ahead: ClaimAhead, rows: Sequence[EventRow]) -> dict[str, ActivityHolder]:
        """For the rows the attempt recorded as owing credit (its credit batch): those another event holds, as
        `claim`. A row the claim ahead did not cover, or that the same event holds under another attempt (which may
        still release it), is claimed again now that it is recorded. Then the claims of every other candidate
        (not recorded, recorded without points, or stored before) are released."""
        try:
            answers = ahead.answers()
        except DomainError:
            self.release_ahead(ahead, {row.event_id for row in rows})  # the batch stays owed; the rest is not ours
            raise
        others = set(answers.other_attempts)
        held: dict[str, ActivityHolder] = {}
        again: list[EventRow] = []
        for row in rows:
            position = ahead.positions.get(row.event_id)
            if position is None or position in others:
                again.append(row)
            elif (holder := answers.holders[position]) is not None:
                held[row.event_id] = holder
        held.update(self.claim(again, ahead.attempt_id))
        self.release_ahead(ahead, {row.event_id for row in rows})
        return held

    def release_ahead(self, ahead: ClaimAhead, kept: Collection[str] = ()) -> None:
        """Releases the claims ahead of the candidates not in `kept`, after their answer (best effort: a claim the
        gateway cannot release now stays until the same event is recorded by a retry, ADR 0415)."""
        if self._gateway is None:
            return
        positions = [n for event_id, n in ahead.positions.items() if event_id not in kept]
        if not positions:
            return
        with suppress(DomainError):
            ahead.answers()  # the claim is in (or failed) before its release goes out
        columns = ahead.fingerprints
        try:
            self._gateway.release(
                [columns.digests[n] for n in positions], [columns.days[n] for n in positions], ahead.attempt_id
            )
        except DomainError as error:
            log.warning(
                "claims ahead of recording not released",
                extra={"attempt_id": ahead.attempt_id, "claims": len(positions), "reason": str(error)},
            )

    def _columns(self, rows: Sequence[EventRow]) -> ClaimColumns:
        assert self._keys is not None
        fingerprints = fingerprint_columns(self._specs, self._keys, rows)
        return ClaimColumns(
            fingerprints.digests,
            fingerprints.key_ids,
            fingerprints.days,
            [row.partner_id for row in rows],
            [row.event_id for row in rows],
        )


def activity_claims(
    settings: Settings, gateway_address: str, deadline_s: float, specs: Mapping[str, FingerprintSpec]
) -> ActivityClaims:
    """Claims as configured: on with a gateway address (the fingerprint keys then required), else off."""
    if not gateway_address:
        log.warning("no CARBON_GATEWAY_ADDRESS: activity claims are off, one activity may earn in two regions")
        return ActivityClaims(None, specs, None)
    text = settings.secret(FINGERPRINT_KEYS_SECRET).reveal()
    if not text:
        raise SettingsError(
            "CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS is required with CARBON_GATEWAY_ADDRESS (docs/adr/0412)"
        )
    try:
        keys = FingerprintKeys.parse(text)
    except FingerprintError as error:
        raise SettingsError(f"CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS: {error}") from None
    return ActivityClaims(GatewayClient(gateway_address, deadline_s, settings), specs, keys)
