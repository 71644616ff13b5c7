"""Following ingest's accepted events: each page updates the habit profiles of the residents who may be profiled,
deletes the profiles of those who no longer may, and marks the accepted offers the events fulfil; then the bonuses
owed are paid. Profiles grow by the events since the last page, never by a scan of anyone's whole history.

Remote calls (ingest, identity) happen before the one transaction that writes a page's effects and moves the
cursor, and that transaction moves the cursor only from where the page was read: a second follower that got there
first makes this one roll back, so no event is folded in twice.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from incentives_svc.clients import AcceptedEvent, IngestClient
from incentives_svc.domain.campaigns import Campaign, bonus_for
from incentives_svc.domain.profiles import ObservedEvent, fold
from incentives_svc.service.closing import Closing
from incentives_svc.service.eligibility import Eligibility
from incentives_svc.service.payments import Payments, bonus_transfer_id
from incentives_svc.store import campaigns as campaign_store
from incentives_svc.store import offers as offer_store
from incentives_svc.store import profiles as profile_store
from service_kit.clock import Clock
from service_kit.errors import DomainError

log = logging.getLogger("carbon.incentives")
CURSOR = "accepted-events"
DEFAULT_PAGE_SIZE = 500


class CursorMoved(Exception):
    """Another follower took this page first."""


class Following:
    def __init__(
        self,
        engine: Engine,
        ingest: IngestClient,
        eligibility: Eligibility,
        payments: Payments,
        clock: Clock,
        page_size: int = DEFAULT_PAGE_SIZE,
        closing: Closing | None = None,
    ) -> None:
        self._engine = engine
        self._ingest = ingest
        self._eligibility = eligibility
        self._payments = payments
        self._clock = clock
        self._page_size = page_size
        self._closing = closing

    def step(self) -> int:
        """Takes in one page of events and pays what is owed; how many events the page had."""
        with self._engine.connect() as conn:
            token = profile_store.cursor(conn, CURSOR)
        events, next_token = self._ingest.accepted_after(token, self._page_size)
        if events:
            eligible = self._eligibility.profiled({event.account_number for event in events}, self._clock())
            try:
                with self._engine.begin() as conn:
                    self._take_in(conn, events, eligible)
                    if not profile_store.advance_cursor(conn, CURSOR, token, next_token):
                        raise CursorMoved
            except CursorMoved:
                return 0
        self._payments.pay_owed()
        return len(events)

    def catch_up(self) -> int:
        """Steps until a page comes back short, then closes the campaigns that are due (only once caught up: every
        event accepted so far has had its chance at a bonus); how many events were taken in."""
        total = 0
        while True:
            count = self.step()
            total += count
            if count < self._page_size:
                if self._closing is not None:
                    self._closing.close_finished()
                return total

    def _take_in(self, conn: Connection, events: Sequence[AcceptedEvent], eligible: set[str]) -> None:
        now = self._clock()
        by_account: dict[str, list[AcceptedEvent]] = defaultdict(list)
        for event in events:
            by_account[event.account_number].append(event)
        # Asked again inside the transaction: a refusal committed since the check above wins.
        eligible = eligible - profile_store.refused(conn, eligible)
        known = profile_store.load(conn, eligible & by_account.keys())
        for number in eligible & by_account.keys():
            observed = [ObservedEvent(e.behaviour, e.occurred_at) for e in by_account[number]]
            profile_store.save(conn, number, fold(known.get(number), observed), number in known, now)
        profile_store.forget(conn, by_account.keys() - eligible)
        _claim_offers(conn, by_account, now)


def _claim_offers(conn: Connection, by_account: dict[str, list[AcceptedEvent]], now: datetime) -> None:
    """Marks each accepted offer that one of these events fulfils (the first such event wins)."""
    campaigns: dict[str, Campaign | None] = {}
    for offer in offer_store.waiting(conn, by_account.keys()):
        if offer.campaign_id not in campaigns:
            campaigns[offer.campaign_id] = campaign_store.get(conn, offer.campaign_id)
        campaign = campaigns[offer.campaign_id]
        if campaign is None:
            continue
        for event in sorted(by_account[offer.account_number], key=lambda e: e.occurred_at):
            bonus = bonus_for(campaign.spec, event.points)
            fits = event.behaviour == campaign.spec.behaviour and campaign.counts(event.occurred_at)
            if fits and event.occurred_at >= offer.accepted_at and bonus > 0:
                transfer_id = bonus_transfer_id(offer.offer_id, event.ref)
                offer_store.claim(conn, offer.offer_id, event.ref, event.occurred_at, transfer_id, bonus, now)
                break


class FollowingLoop:
    """Runs catch_up every `interval_s` in a daemon thread until stopped; a peer that is down is retried later."""

    def __init__(self, following: Following, interval_s: float) -> None:
        self._following = following
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="incentives-following", daemon=True)

    def start(self) -> FollowingLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._following.catch_up()
            except DomainError as error:
                log.warning("could not follow accepted events yet", extra={"reason": error.reason})
            except OperationalError:
                log.warning("could not follow accepted events yet: the database is unavailable")
            self._stopped.wait(self._interval_s)
