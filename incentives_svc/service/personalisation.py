"""SetPersonalisation: a resident switches personalisation off (the profile is deleted at once and no new one is
built) or on again (profiling may resume; it still needs PERSONALISATION consent and an adult holder)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from incentives_svc.domain.campaigns import check_request_id
from incentives_svc.service.offers import check_account
from incentives_svc.store import profiles as profile_store
from service_kit.clock import Clock
from service_kit.errors import AlreadyExists


class Personalisation:
    def __init__(self, engine: Engine, region_code: str, clock: Clock) -> None:
        self._engine = engine
        self._region_code = region_code
        self._clock = clock

    def set(self, request_id: str, account_number: str, enabled: bool) -> bool:
        """Whether this request deleted a profile (a repeat answers as the first call did)."""
        check_request_id(request_id)
        check_account(account_number, self._region_code)
        try:
            with self._engine.begin() as conn:
                earlier = profile_store.find_request(conn, request_id)
                if earlier is None:
                    now = self._clock()
                    profile_store.set_refusal(conn, account_number, not enabled, now)
                    deleted = not enabled and profile_store.forget(conn, [account_number]) > 0
                    profile_store.record_request(conn, request_id, account_number, enabled, deleted, now)
                    return deleted
        except IntegrityError:
            with self._engine.connect() as conn:
                earlier = profile_store.find_request(conn, request_id)
            assert earlier is not None
        first_account, first_enabled, first_deleted = earlier
        if (first_account, first_enabled) != (account_number, enabled):
            raise AlreadyExists("REQUEST_ID_REUSED", f"request_id {request_id!r} was used for another choice")
        return first_deleted
