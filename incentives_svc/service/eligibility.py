"""Who may be profiled: a resident whose PERSONALISATION consent is in force, who is not a minor (PIPL art. 31) and
who has not switched personalisation off here. Everyone else's profile is deleted when next seen."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Engine

from incentives_svc.clients import IdentityClient
from incentives_svc.store import profiles as profile_store


class Eligibility:
    def __init__(self, engine: Engine, identity: IdentityClient) -> None:
        self._engine = engine
        self._identity = identity

    def profiled(self, account_numbers: Collection[str], now: datetime) -> set[str]:
        """The accounts among these that may be profiled now (identity's answers, then this service's refusals)."""
        consented = self._identity.personalisation_allowed(list(account_numbers), now)
        adults = {number for number, allowed in consented.items() if allowed and not self._identity.is_minor(number)}
        with self._engine.connect() as conn:
            return adults - profile_store.refused(conn, adults)
