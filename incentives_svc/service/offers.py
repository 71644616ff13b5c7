"""ListOffers, ExplainOffer, AcceptOffer and GetProfile: what a resident is offered, why, and what is held about
them. A profile is used only while the resident may still be profiled (consent in force, an adult, not refused):
asked again on every call, so a consent withdrawn at identity deletes the profile at the next look."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from incentives_svc.domain.campaigns import check_request_id
from incentives_svc.domain.offers import DEFAULT_OFFERS, MAX_OFFERS, Offer, OfferState, offers_for
from incentives_svc.domain.profiles import Profile
from incentives_svc.service.eligibility import Eligibility
from incentives_svc.store import campaigns as campaign_store
from incentives_svc.store import offers as offer_store
from incentives_svc.store import profiles as profile_store
from incentives_svc.store.offers import StoredOffer
from service_kit.accounts import is_account_number, region_of
from service_kit.clock import Clock
from service_kit.errors import AlreadyExists, InvalidArgument, NotFound

_STATES = {
    offer_store.ACCEPTED: OfferState.ACCEPTED,
    offer_store.PAYING: OfferState.FULFILLED,
    offer_store.FULFILLED: OfferState.FULFILLED,
    offer_store.BUDGET_EXHAUSTED: OfferState.BUDGET_EXHAUSTED,
}


@dataclass(frozen=True)
class OfferView:
    """An offer as the resident sees it: with its state and, once fulfilled, the bonus and the event."""

    offer: Offer
    state: OfferState
    stored: StoredOffer | None = None


def check_account(account_number: str, region_code: str) -> None:
    if not is_account_number(account_number):
        raise InvalidArgument("account_number", "must be a 16-digit account number", "INVALID_ACCOUNT_NUMBER")
    if region_of(account_number) != region_code:
        raise InvalidArgument("account_number", f"is not an account of region {region_code}", "INVALID_ACCOUNT_NUMBER")


class Offers:
    def __init__(self, engine: Engine, eligibility: Eligibility, region_code: str, clock: Clock) -> None:
        self._engine = engine
        self._eligibility = eligibility
        self._region_code = region_code
        self._clock = clock

    def list_offers(self, account_number: str, max_results: int) -> tuple[list[OfferView], bool]:
        """The best-fitting offers and whether they were chosen from a profile."""
        if not 0 <= max_results <= MAX_OFFERS:
            raise InvalidArgument("max_results", f"must be 0-{MAX_OFFERS}")
        views, profile = self._views(account_number)
        return views[: max_results or DEFAULT_OFFERS], profile is not None

    def explain(self, account_number: str, offer_id: str) -> OfferView:
        views, _ = self._views(account_number)
        return _one(views, offer_id)

    def accept(self, request_id: str, account_number: str, offer_id: str) -> OfferView:
        check_request_id(request_id)
        if not offer_id:
            raise InvalidArgument("offer_id", "is required")
        views, _ = self._views(account_number)
        with self._engine.connect() as conn:
            earlier = offer_store.find_by_request(conn, request_id)
        if earlier is not None and (earlier.offer_id, earlier.account_number) != (offer_id, account_number):
            raise AlreadyExists("REQUEST_ID_REUSED", f"request_id {request_id!r} accepted another offer")
        view = _one(views, offer_id)
        if view.stored is not None:
            return view
        try:
            with self._engine.begin() as conn:
                campaign_id = view.offer.campaign.campaign_id
                offer_store.insert_accepted(conn, offer_id, campaign_id, account_number, request_id, self._clock())
        except IntegrityError:
            pass  # accepted concurrently, by this request or another: it is accepted either way
        with self._engine.connect() as conn:
            stored = offer_store.find(conn, offer_id)
        return OfferView(view.offer, OfferState.ACCEPTED, stored)

    def profile(self, account_number: str) -> tuple[Profile, datetime]:
        """The profile and when it last took in an event."""
        profile = self._profile(account_number)
        with self._engine.connect() as conn:
            updated_at = profile_store.updated_at(conn, account_number)
        if profile is None or updated_at is None:
            raise NotFound("PROFILE_NOT_FOUND", "this resident is not profiled")
        return profile, updated_at

    def _views(self, account_number: str) -> tuple[list[OfferView], Profile | None]:
        check_account(account_number, self._region_code)
        profile = self._profile(account_number)
        with self._engine.connect() as conn:
            campaigns = campaign_store.all_campaigns(conn)
            stored = offer_store.of_account(conn, account_number)
        views = []
        for offer in offers_for(account_number, campaigns, profile, self._clock(), frozenset(stored)):
            found = stored.get(offer.offer_id)
            views.append(OfferView(offer, OfferState.OFFERED if found is None else _STATES[found.state], found))
        return views, profile

    def _profile(self, account_number: str) -> Profile | None:
        """The resident's profile while they may be profiled; deleted (and None) once they may not."""
        check_account(account_number, self._region_code)
        with self._engine.connect() as conn:
            profile = profile_store.load(conn, [account_number]).get(account_number)
        if profile is None:
            return None
        if self._eligibility.profiled([account_number], self._clock()):
            return profile
        with self._engine.begin() as conn:
            profile_store.forget(conn, [account_number])
        return None


def _one(views: list[OfferView], offer_id: str) -> OfferView:
    for view in views:
        if view.offer.offer_id == offer_id:
            return view
    raise NotFound("OFFER_NOT_FOUND", f"no offer {offer_id!r} for this resident now")
