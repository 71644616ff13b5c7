"""Recommendations: which rewards the account's available points buy here, and which are nearly in reach."""

from __future__ import annotations

from sqlalchemy import Engine

from rewards_svc import store
from rewards_svc.clients import Ledger, LedgerRefused, LedgerUnavailable
from rewards_svc.domain.catalog import Recommendation, recommend, validate_max_results
from rewards_svc.domain.requests import require_account, require_region_code
from service_kit.clock import Clock
from service_kit.errors import Unavailable


class Recommendations:
    def __init__(self, engine: Engine, ledger: Ledger, region_code: str, clock: Clock) -> None:
        self._engine = engine
        self._ledger = ledger
        self._region_code = region_code
        self._clock = clock

    def recommend(self, account_number: str, region_code: str, max_results: int) -> tuple[int, list[Recommendation]]:
        """The available points and the recommendations for them; an empty region code means this service's."""
        require_account(account_number)
        region_code = region_code or self._region_code
        require_region_code(region_code)
        count = validate_max_results(max_results)
        try:
            available = self._ledger.available_points(account_number)
        except LedgerUnavailable:
            raise Unavailable("LEDGER_UNAVAILABLE", "the ledger did not answer; try again") from None
        except LedgerRefused as refused:
            raise refused.as_domain_error() from None
        with self._engine.connect() as connection:
            rewards = store.rewards.list_page(connection)
        return available, recommend(rewards, available, region_code, self._clock(), count)
