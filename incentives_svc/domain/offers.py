"""Offers: which running campaigns fit a resident, on which facts of their own history, in what order, and the
plain-language reason. Untargeted campaigns fit everyone alike, profiled or not: refusing personalisation never
costs a resident an offer everyone gets (PIPL art. 24)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from incentives_svc.domain.campaigns import Campaign, TargetKind, bonus_text, rule_text
from incentives_svc.domain.profiles import RECENT_DAYS, Profile
from service_kit.clock import CHINA_STANDARD_TIME

DEFAULT_OFFERS = 3
MAX_OFFERS = 10


class OfferState(IntEnum):
    """Mirrors carbon.incentives.v1.OfferState."""

    OFFERED = 1
    ACCEPTED = 2
    FULFILLED = 3
    BUDGET_EXHAUSTED = 4


@dataclass(frozen=True)
class Fact:
    kind: str
    text: str


@dataclass(frozen=True)
class Explanation:
    facts: tuple[Fact, ...]
    rule: str

    @property
    def summary(self) -> str:
        facts = " ".join(fact.text for fact in self.facts)
        return f"{facts} {self.rule}".strip()


@dataclass(frozen=True)
class Offer:
    offer_id: str
    campaign: Campaign
    explanation: Explanation

    @property
    def targeted(self) -> bool:
        return self.campaign.spec.target.targeted

    @property
    def headline(self) -> str:
        spec = self.campaign.spec
        until = spec.ends_at.astimezone(CHINA_STANDARD_TIME).date().isoformat()
        return f"{spec.behaviour} by {until}: {bonus_text(spec)}"


def offer_id_for(campaign_id: str, account_number: str) -> str:
    """One offer per campaign and resident; the id does not show the account number."""
    return "off-" + hashlib.sha256(f"{campaign_id}\x00{account_number}".encode()).hexdigest()[:24]


def facts_for(campaign: Campaign, profile: Profile | None, today: date) -> tuple[Fact, ...] | None:
    """The facts of the resident's own history on which the campaign's rule holds for them, or None when it does
    not (a targeted rule never holds without a profile)."""
    rule = campaign.spec.target
    behaviour = campaign.spec.behaviour
    if rule.kind is TargetKind.EVERYONE:
        return ()
    if profile is None:
        return None
    since = profile.days_since(behaviour, today)
    if rule.kind is TargetKind.NEVER_TRIED:
        return (_never(behaviour),) if since is None else None
    if rule.kind is TargetKind.LAPSED:
        if since is None:
            return (_never(behaviour), *_context(profile, today))
        if since < rule.days:
            return None
        habit = profile.habits[behaviour]
        last = Fact("LAST_DONE", f"You last did {behaviour} on {habit.last_day.isoformat()}, {since} days ago.")
        return (last, *_context(profile, today))
    weekdays = profile.recent_weekdays(behaviour, today)
    if weekdays < rule.weekdays:
        return None
    regular = Fact("WEEKDAYS_DONE", f"You did {behaviour} on {weekdays} weekdays of the last {RECENT_DAYS} days.")
    return (regular, *_typical_hour(profile))


def _never(behaviour: str) -> Fact:
    return Fact("NEVER_DONE", f"You have not done {behaviour} since your profile began.")


def _context(profile: Profile, today: date) -> tuple[Fact, ...]:
    idle, observed = profile.idle_days(today)
    if not idle:
        return ()
    return (Fact("IDLE_DAYS", f"You had no low-carbon action on {idle} of the last {observed} days."),)


def _typical_hour(profile: Profile) -> tuple[Fact, ...]:
    hour = profile.typical_hour()
    if hour < 0:
        return ()
    return (Fact("TYPICAL_HOUR", f"Most of your low-carbon actions happen around {hour:02d}:00."),)


def offers_for(
    account_number: str,
    campaigns: list[Campaign],
    profile: Profile | None,
    now: datetime,
    accepted: frozenset[str] = frozenset(),
) -> list[Offer]:
    """Every running campaign that fits, and every offer the resident accepted (`accepted` offer ids: listed with
    their outcome even once the campaign is spent or over, or their rule no longer holds), best first: targeted
    (they rest on the resident's own habits) before untargeted, then the larger fixed bonus, then the larger
    percentage, then the campaign id (a stable order)."""
    today = now.astimezone(CHINA_STANDARD_TIME).date()
    found = []
    for campaign in campaigns:
        offer_id = offer_id_for(campaign.campaign_id, account_number)
        facts = facts_for(campaign, profile, today) if campaign.running(now) else None
        if offer_id in accepted:
            facts = facts or ()
        if facts is None:
            continue
        found.append(Offer(offer_id, campaign, Explanation(facts, rule_text(campaign.spec))))
    found.sort(
        key=lambda o: (
            not o.targeted,
            -o.campaign.spec.bonus_points,
            -o.campaign.spec.bonus_percent,
            o.campaign.campaign_id,
        )
    )
    return found
