"""Campaigns: a bonus for a behaviour, a rule of whom it targets, a time window and a points budget; their checks,
ids, bonus arithmetic and the plain-language text of their rule."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from service_kit.accounts import campaign_account
from service_kit.clock import CHINA_STANDARD_TIME
from service_kit.errors import InvalidArgument

MAX_NAME_CHARACTERS = 100
MAX_BEHAVIOUR_CHARACTERS = 64
MAX_BONUS_PERCENT = 1_000
MAX_LAPSE_DAYS = 365
MAX_WEEKDAYS = 20
# A weekday regular is counted over four weeks: enough to see a habit, short enough to see it change.
REGULAR_WINDOW_DAYS = 28
MAX_REQUEST_ID_CHARACTERS = 128
# The latest an event may reach ingest after it happened: the catalog's longest acceptance window (counter records,
# 31 days). An event of a campaign's window can earn its bonus until then, so its budget is kept until then.
LATEST_ARRIVAL = timedelta(days=31)


class TargetKind(IntEnum):
    """Mirrors carbon.incentives.v1.TargetKind."""

    EVERYONE = 1
    LAPSED = 2
    NEVER_TRIED = 3
    WEEKDAY_REGULAR = 4


class Scope(IntEnum):
    """Mirrors carbon.incentives.v1.CampaignScope."""

    REGIONAL = 1
    NATIONAL = 2


@dataclass(frozen=True)
class TargetRule:
    kind: TargetKind
    days: int = 0
    weekdays: int = 0

    @property
    def targeted(self) -> bool:
        return self.kind is not TargetKind.EVERYONE


@dataclass(frozen=True)
class CampaignSpec:
    """What an operator asks for."""

    name: str
    behaviour: str
    bonus_points: int
    bonus_percent: int
    target: TargetRule
    starts_at: datetime
    ends_at: datetime
    budget_points: int
    scope: Scope


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    spec: CampaignSpec
    created_at: datetime
    funded: bool = False
    paid_points: int = 0
    bonuses_paid: int = 0
    exhausted: bool = False
    # What was left of the budget when the campaign closed and went back to issuance; None while it is open.
    returned_points: int | None = None

    @property
    def budget_account(self) -> str:
        return campaign_account(self.campaign_id)

    def running(self, now: datetime) -> bool:
        """Offered now: funded, inside its window and not known to be spent."""
        return self.funded and not self.exhausted and self.spec.starts_at <= now < self.spec.ends_at

    def counts(self, occurred_at: datetime) -> bool:
        return self.spec.starts_at <= occurred_at < self.spec.ends_at


def closes_at(campaign: Campaign) -> datetime:
    """When no event can earn this campaign's bonus any more: its window's end, plus the longest time an event may
    arrive after it happened (the catalog's counter window, ADR 0411), plus a day for followers that lag."""
    return campaign.spec.ends_at + LATEST_ARRIVAL + timedelta(days=1)


def campaign_id_for(region_code: str, request_id: str) -> str:
    """The id a request creates: the same request always names the same campaign (16 hex digits: it fits the ledger's
    campaign account names and says nothing about who asked)."""
    return hashlib.sha256(f"{region_code}\x00{request_id}".encode()).hexdigest()[:16]


def check_request_id(request_id: str, field: str = "request_id") -> None:
    if not request_id.strip():
        raise InvalidArgument(field, "is required")
    if len(request_id) > MAX_REQUEST_ID_CHARACTERS:
        raise InvalidArgument(field, f"is longer than {MAX_REQUEST_ID_CHARACTERS} characters")


def check_spec(spec: CampaignSpec) -> None:
    """InvalidArgument naming the first field that is wrong."""
    if not 0 < len(spec.name.strip()) <= MAX_NAME_CHARACTERS:
        raise InvalidArgument("campaign.name", f"must be 1-{MAX_NAME_CHARACTERS} characters")
    if not 0 < len(spec.behaviour) <= MAX_BEHAVIOUR_CHARACTERS:
        raise InvalidArgument(
            "campaign.behaviour", f"must be a behaviour code of 1-{MAX_BEHAVIOUR_CHARACTERS} characters"
        )
    if spec.bonus_points < 0 or spec.bonus_percent < 0 or (spec.bonus_points > 0) == (spec.bonus_percent > 0):
        raise InvalidArgument("campaign.bonus_points", "exactly one of bonus_points and bonus_percent must be positive")
    if spec.bonus_percent > MAX_BONUS_PERCENT:
        raise InvalidArgument("campaign.bonus_percent", f"must be at most {MAX_BONUS_PERCENT}")
    _check_target(spec.target)
    if spec.ends_at <= spec.starts_at:
        raise InvalidArgument("campaign.ends_at", "must be after starts_at")
    if spec.budget_points <= 0:
        raise InvalidArgument("campaign.budget_points", "must be positive")


def _check_target(rule: TargetRule) -> None:
    if rule.kind is TargetKind.LAPSED and not 1 <= rule.days <= MAX_LAPSE_DAYS:
        raise InvalidArgument("campaign.target.days", f"must be 1-{MAX_LAPSE_DAYS} for LAPSED")
    if rule.kind is TargetKind.WEEKDAY_REGULAR and not 1 <= rule.weekdays <= MAX_WEEKDAYS:
        raise InvalidArgument("campaign.target.weekdays", f"must be 1-{MAX_WEEKDAYS} for WEEKDAY_REGULAR")


def bonus_for(spec: CampaignSpec, event_points: int) -> int:
    """The bonus an event earns: the fixed points, or the percentage of the event's points rounded down."""
    return spec.bonus_points if spec.bonus_points else event_points * spec.bonus_percent // 100


def bonus_text(spec: CampaignSpec) -> str:
    return f"+{spec.bonus_points} points" if spec.bonus_points else f"+{spec.bonus_percent}% of the points"


def rule_text(spec: CampaignSpec) -> str:
    """The campaign's rule in plain English, as a resident reads it."""
    until = spec.ends_at.astimezone(CHINA_STANDARD_TIME).date().isoformat()
    who = {
        TargetKind.EVERYONE: "everyone in the region",
        TargetKind.LAPSED: f"residents who have not done {spec.behaviour} in the last {spec.target.days} days",
        TargetKind.NEVER_TRIED: f"residents who have never done {spec.behaviour}",
        TargetKind.WEEKDAY_REGULAR: (
            f"residents who did {spec.behaviour} on at least {spec.target.weekdays} weekdays of the last "
            f"{REGULAR_WINDOW_DAYS} days"
        ),
    }[spec.target.kind]
    return f'Campaign "{spec.name}" gives {bonus_text(spec)} for {spec.behaviour} until {until} to {who}.'
