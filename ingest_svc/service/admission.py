"""The checks of a submitted batch as a whole, before any of its events is looked at: its size, the partner's
signature and the partner's rate limit. Each failure refuses the whole batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest_svc.domain.events import Event
from ingest_svc.domain.partners import BURST_SECONDS, Partner, key_for_verification
from ingest_svc.service.partners import Partners
from service_kit.clock import Clock
from service_kit.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from service_kit.partner_signing import signature_matches
from service_kit.ratelimit import Limiter

MAX_BATCH_EVENTS = 5000


@dataclass(frozen=True)
class Batch:
    partner_id: str
    batch_id: str
    events: Sequence[Event]
    key_id: str
    signature: str
    canonical: bytes  # the signed bytes (service_kit.partner_signing.canonical_bytes)


@dataclass(frozen=True)
class Admitted:
    """A batch that passed the whole-batch checks, with its partner and the time it arrived."""

    batch: Batch
    partner: Partner
    now: datetime


class Admission:
    def __init__(self, partners: Partners, rate_limiter: Limiter, clock: Clock) -> None:
        self._partners = partners
        self._rate = rate_limiter
        self._clock = clock

    def admit(self, batch: Batch) -> Admitted:
        now = self._clock()
        if len(batch.events) > MAX_BATCH_EVENTS:
            raise InvalidArgument("events", f"at most {MAX_BATCH_EVENTS} events per batch", reason="BATCH_TOO_LARGE")
        partner = self._authenticate(batch, now)
        if not self._within_rate(partner, len(batch.events), now):
            # RetryInfo: the time the bucket takes to refill this batch's events.
            refill = timedelta(seconds=len(batch.events) / partner.rate_limit_per_second)
            raise ResourceExhausted(
                "RATE_LIMITED",
                f"partner {partner.partner_id} is over {partner.rate_limit_per_second} events/s",
                retry_delay=refill,
            )
        return Admitted(batch, partner, now)

    def _authenticate(self, batch: Batch, now: datetime) -> Partner:
        try:
            return self._verify(batch, now, fresh=False)
        except Unauthenticated:
            # The cache may predate a new partner or key (registered or rotated by another replica): look again.
            return self._verify(batch, now, fresh=True)

    def _verify(self, batch: Batch, now: datetime, fresh: bool) -> Partner:
        partner, keys = self._partners.for_verification(batch.partner_id, fresh)
        if partner is None or not partner.active:
            raise Unauthenticated("UNKNOWN_PARTNER", "partner_id: unknown or inactive partner")
        key = key_for_verification(keys, batch.key_id, now)
        if key is None:
            raise Unauthenticated("UNKNOWN_KEY", "key_id: not a valid signing key of this partner (expired?)")
        if not signature_matches(key.secret, batch.canonical, batch.signature):
            raise Unauthenticated("BAD_SIGNATURE", "signature: does not match the batch")
        return partner

    def _within_rate(self, partner: Partner, events: int, now: datetime) -> bool:
        """A partner's events per second, with BURST_SECONDS of burst; 0 means unlimited."""
        rate = partner.rate_limit_per_second
        if rate <= 0:
            return True
        return self._rate.allow(partner.partner_id, rate, rate * BURST_SECONDS, cost=events, now_s=now.timestamp())
