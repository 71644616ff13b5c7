"""Data partners: what each may report, which signing keys are valid when, and how much burst their rate allows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ingest_svc.domain.events import PartnerScope

PARTNER_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
KINDS = (
    "TRANSIT_OPERATOR",
    "BIKE_SHARE",
    "CHARGER_NETWORK",
    "DELIVERY_PLATFORM",
    "SORTING_STATION",
    "COMMUNITY_CENTRE",
    "RETAILER",
    "UTILITY",
)
COMMUNITY_CENTRE = "COMMUNITY_CENTRE"
# A burst may be this many seconds' worth of the partner's rate (a batch of 500 at 100/s fits).
BURST_SECONDS = 10


@dataclass(frozen=True)
class Partner:
    partner_id: str
    name: str
    kind: str
    allowed_behaviours: tuple[str, ...]
    allowed_regions: tuple[str, ...]
    rate_limit_per_second: int  # 0 = unlimited
    active_key_id: str = ""
    active: bool = True

    @property
    def scope(self) -> PartnerScope:
        counter = self.kind == COMMUNITY_CENTRE
        return PartnerScope(frozenset(self.allowed_behaviours), frozenset(self.allowed_regions), counter)


@dataclass(frozen=True)
class PartnerKey:
    key_id: str
    secret: bytes = field(repr=False)
    created_at: datetime
    # None while it is the active key; after a rotation, the end of its grace period.
    valid_until: datetime | None = None


def key_for_verification(keys: Sequence[PartnerKey], key_id: str, now: datetime) -> PartnerKey | None:
    """The key named by the batch, if it is active or still within its grace period after a rotation."""
    for key in keys:
        if key.key_id == key_id and (key.valid_until is None or now < key.valid_until):
            return key
    return None
