"""The claim step of the credit outbox: before a credit batch goes to the ledger, its events' activity fingerprints
are claimed at the national gateway in ONE call (docs/adr/0413-claims-in-the-credit-outbox.md). An event whose
activity another event holds is recorded DUPLICATE_ACTIVITY with 0 points and is not credited.

Without a gateway address claims are off (each region alone, as before issue 16); a gateway without a fingerprint key
is a configuration error, found at start."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ingest_svc.clients import ClaimColumns, GatewayClient
from ingest_svc.domain.event_rows import EventRow
from ingest_svc.domain.fingerprints import (
    ActivityHolder,
    FingerprintError,
    FingerprintKeys,
    FingerprintSpec,
    fingerprint_columns,
)
from service_kit.settings import Settings, SettingsError

log = logging.getLogger("carbon.ingest")

FINGERPRINT_KEYS_SECRET = "activity_fingerprint_keys"


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

    def claim(self, rows: Sequence[EventRow]) -> dict[str, ActivityHolder]:
        """The rows whose activity another event holds, by event id, with that holder (empty when claims are off).
        UNAVAILABLE when the gateway does not answer: nothing was credited, the batch stays owed."""
        if self._gateway is None or self._keys is None or not rows:
            return {}
        fingerprints = fingerprint_columns(self._specs, self._keys, rows)
        answers = self._gateway.claim(
            ClaimColumns(
                fingerprints.digests,
                fingerprints.key_ids,
                fingerprints.days,
                [row.partner_id for row in rows],
                [row.event_id for row in rows],
            )
        )
        return {row.event_id: holder for row, holder in zip(rows, answers, strict=True) if holder is not None}


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
