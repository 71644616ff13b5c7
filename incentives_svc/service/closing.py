"""Closing finished campaigns: what is left of a budget goes back to system:issuance once no event can earn from it.

A campaign's budget sits in its own ledger account (ADR 0115). Left there, the remainder would count as points held
for two years and then as points expired, although no resident ever had them. Once the campaign's window has ended
and the latest event of the window could have arrived (domain.campaigns.closes_at), and no bonus of it is still owed
to the ledger, the remainder is posted back to issuance.

The remainder is decided once and stored before it is posted, so a retry after a crash posts the same transfer under
the same id and the ledger answers ALREADY_POSTED; the campaign is marked returned only after the ledger's answer. A
bonus claimed after closing (an event that arrived later than any window allows) finds the budget account empty and
ends BUDGET_EXHAUSTED: the ledger, not this module, keeps a campaign from paying more than its budget.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from incentives_svc.clients import LedgerClient, Posting
from incentives_svc.domain.campaigns import LATEST_ARRIVAL, Campaign, closes_at
from incentives_svc.store import campaigns as campaign_store
from incentives_svc.store import offers as offer_store
from service_kit.accounts import ISSUANCE_ACCOUNT
from service_kit.clock import Clock

log = logging.getLogger("carbon.incentives")
RETURN_PREFIX = "incentive:return:"
CLOSE_BATCH = 50


class Closing:
    def __init__(self, engine: Engine, ledger: LedgerClient, clock: Clock) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock

    def close_finished(self) -> int:
        """Returns the remainders of the campaigns that are due; how many campaigns were closed."""
        now = self._clock()
        with self._engine.connect() as conn:
            candidates = campaign_store.due_to_close(conn, now - LATEST_ARRIVAL, CLOSE_BATCH)
        return sum(1 for campaign in candidates if closes_at(campaign) <= now and self._close(campaign))

    def _close(self, campaign: Campaign) -> bool:
        with self._engine.begin() as conn:
            if offer_store.owed_for(conn, campaign.campaign_id):
                return False  # its bonuses are paid first, by the follower's pay_owed
        remainder = self._ledger.balance(campaign.budget_account)
        with self._engine.begin() as conn:
            remainder = campaign_store.remainder_to_return(conn, campaign.campaign_id, remainder)
        if remainder > 0:
            (result,) = self._ledger.post([return_posting(campaign, remainder)])
            if not result.posted:
                if result.failure_reason == "INSUFFICIENT_POINTS":
                    # Not posted, and less is left than decided (a bonus paid in between): decided afresh next time.
                    with self._engine.begin() as conn:
                        campaign_store.forget_remainder(conn, campaign.campaign_id)
                log.warning(
                    "the ledger refused a campaign's remainder; retried later",
                    extra={"campaign_id": campaign.campaign_id, "reason": result.failure_reason},
                )
                return False
        with self._engine.begin() as conn:
            campaign_store.mark_returned(conn, campaign.campaign_id)
        return True


def return_posting(campaign: Campaign, remainder: int) -> Posting:
    return Posting(
        transfer_id=RETURN_PREFIX + campaign.campaign_id,
        debit_account=campaign.budget_account,
        credit_account=ISSUANCE_ACCOUNT,
        amount_points=remainder,
        code=lpb.TRANSFER_CODE_ADJUST,
        reference=f"campaign {campaign.campaign_id}: unspent budget returned",
    )
