"""Who may be profiled: a resident whose PERSONALISATION consent is in force, who is not a minor (PIPL art. 31) and
who has not switched personalisation off here. Everyone else's profile is deleted when next seen.

Whether a resident is a minor is asked of identity one account at a time. A resident who is an adult stays one (the
ID number, and so the birth date, is never corrected), so adults are remembered in a bounded in-process set and
asked about once; minors are asked again each time, since they come of age. Consent is asked every time, in one
columnar call per page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Engine

from incentives_svc.clients import IdentityClient
from incentives_svc.store import profiles as profile_store

# About 100 bytes each: a few tens of MB at most, and enough for a region's daily active residents to be asked once.
KNOWN_ADULTS_KEPT = 200_000


class Eligibility:
    def __init__(self, engine: Engine, identity: IdentityClient, adults_kept: int = KNOWN_ADULTS_KEPT) -> None:
        self._engine = engine
        self._identity = identity
        self._adults = KnownAdults(adults_kept)

    def profiled(self, account_numbers: Collection[str], now: datetime) -> set[str]:
        """The accounts among these that may be profiled now (identity's answers, then this service's refusals)."""
        consented = self._identity.personalisation_allowed(list(account_numbers), now)
        adults = {number for number, allowed in consented.items() if allowed and self._is_adult(number)}
        with self._engine.connect() as conn:
            return adults - profile_store.refused(conn, adults)

    def _is_adult(self, account_number: str) -> bool:
        if account_number in self._adults:
            return True
        if self._identity.is_minor(account_number):
            return False
        self._adults.add(account_number)
        return True


class KnownAdults:
    """Account numbers known to belong to adults, the least recently seen forgotten first beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, account_number: object) -> bool:
        with self._lock:
            if account_number not in self._seen:
                return False
            self._seen.move_to_end(account_number)  # type: ignore[arg-type]
            return True

    def add(self, account_number: str) -> None:
        with self._lock:
            self._seen[account_number] = None
            self._seen.move_to_end(account_number)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
