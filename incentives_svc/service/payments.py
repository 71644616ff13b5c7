"""Paying the bonuses of fulfilled offers through the ledger, once each, from the campaign's budget.

A bonus is two linked transfers in one ledger transaction: the campaign's account gives the points back to
system:issuance, and system:issuance credits the resident fresh points dated the day of the event that earned them
(so the bonus expires two years after that day, like the points of the event itself). The campaign's account is an
account that may never go negative and that the ledger locks for the posting, so concurrent bonuses can never take
more than the budget: the one that would is refused INSUFFICIENT_POINTS, and its offer ends BUDGET_EXHAUSTED.
Both transfer ids derive from the offer and the event, so a retry after a crash or a timeout posts nothing twice.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import Engine

from carbon.ledger.v1 import ledger_service_pb2 as lpb
from incentives_svc.clients import LedgerClient, Posting
from incentives_svc.store import campaigns as campaign_store
from incentives_svc.store import offers as offer_store
from incentives_svc.store.offers import BUDGET_EXHAUSTED, FULFILLED, StoredOffer
from service_kit.accounts import ISSUANCE_ACCOUNT, campaign_account
from service_kit.clock import Clock

log = logging.getLogger("carbon.incentives")
BONUS_PREFIX = "incentive:"
BUDGET_SUFFIX = ":budget"
OWED_BATCH = 100


def bonus_transfer_id(offer_id: str, event_ref: str) -> str:
    """The transfer that pays an offer's bonus for one event: traceable to both, the same on every retry."""
    digest = hashlib.sha256(event_ref.encode()).hexdigest()[:16]
    return f"{BONUS_PREFIX}{offer_id}:{digest}"


class Payments:
    def __init__(self, engine: Engine, ledger: LedgerClient, clock: Clock) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock = clock

    def pay_owed(self) -> int:
        """Pays the bonuses owed (offers in PAYING), oldest first; how many were settled."""
        with self._engine.connect() as conn:
            owed = offer_store.unpaid(conn, OWED_BATCH)
        return sum(1 for offer in owed if self.pay(offer))

    def pay(self, offer: StoredOffer) -> bool:
        """Posts the bonus and settles the offer; False when the ledger gave no final answer (retried later)."""
        budget_leg, bonus_leg = self._ledger.post(_postings(offer))
        if budget_leg.posted and bonus_leg.posted:
            self._settle(offer, FULFILLED)
            return True
        if budget_leg.failure_reason == "INSUFFICIENT_POINTS":
            self._settle(offer, BUDGET_EXHAUSTED)
            return True
        log.warning(
            "the ledger refused a bonus; it stays owed",
            extra={"offer_id": offer.offer_id, "reason": budget_leg.failure_reason or bonus_leg.failure_reason},
        )
        return False

    def _settle(self, offer: StoredOffer, state: str) -> None:
        with self._engine.begin() as conn:
            if not offer_store.settle(conn, offer.offer_id, state, self._clock()):
                return  # another worker settled it (and counted it) first
            if state == FULFILLED:
                campaign_store.count_payment(conn, offer.campaign_id, offer.bonus_points)
            else:
                campaign_store.mark_exhausted(conn, offer.campaign_id)


def _postings(offer: StoredOffer) -> list[Posting]:
    metadata = (("offer_id", offer.offer_id), ("campaign_id", offer.campaign_id), ("event", offer.event_ref))
    return [
        Posting(
            transfer_id=offer.transfer_id + BUDGET_SUFFIX,
            debit_account=campaign_account(offer.campaign_id),
            credit_account=ISSUANCE_ACCOUNT,
            amount_points=offer.bonus_points,
            code=lpb.TRANSFER_CODE_ADJUST,
            reference=offer.transfer_id,
            linked=True,
            metadata=metadata,
        ),
        Posting(
            transfer_id=offer.transfer_id,
            debit_account=ISSUANCE_ACCOUNT,
            credit_account=offer.account_number,
            amount_points=offer.bonus_points,
            code=lpb.TRANSFER_CODE_EARN,
            reference=f"event {offer.event_ref}",
            earned_at=offer.occurred_at,
            metadata=metadata,
        ),
    ]
