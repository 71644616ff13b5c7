"""Consent per data category (PIPL: separate consent per scenario): recorded as a history of grants and revocations,
decided for each event by the record in force when the event happened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from identity_svc.domain.accounts import AccountState, Channel
from service_kit.errors import InvalidArgument

MAX_QUESTIONS = 10_000
# A consent may not take effect later than this after it is recorded (clock skew between callers).
MAX_FUTURE_SKEW = timedelta(minutes=5)


class DataCategory(IntEnum):
    """Mirrors carbon.common.v1.DataCategory."""

    TRANSIT = 1
    CYCLING = 2
    EV_CHARGING = 3
    FOOD_DELIVERY = 4
    SHOPPING = 5
    GARBAGE_SORTING = 6
    COMMUNITY_ACTIVITY = 7
    UTILITIES = 8
    CROSS_REGION_SHARING = 9
    PERSONALISATION = 10


class ConsentAction(IntEnum):
    GRANT = 1
    REVOKE = 2


def validate_category(value: int, field_name: str = "category") -> DataCategory:
    if value not in DataCategory._value2member_map_:
        raise InvalidArgument(field_name, "must be a known data category", reason="INVALID_CATEGORY")
    return DataCategory(value)


def validate_consent_question(category: int, at: datetime | None, fields: tuple[str, str]) -> None:
    """One consent question asked beside another request: a known category and a moment; `fields` names them."""
    validate_category(category, fields[0])
    if at is None:
        raise InvalidArgument(fields[1], "is required", reason="INVALID_EVENT_TIME")


def validate_effective_at(effective_at: datetime | None, now: datetime) -> datetime:
    """When a consent takes effect: now unless backdated; never later than the skew callers' clocks may have."""
    if effective_at is None:
        return now
    if effective_at > now + MAX_FUTURE_SKEW:
        raise InvalidArgument("effective_at", "may not be in the future", reason="INVALID_EFFECTIVE_AT")
    return effective_at


def require_after_opening(effective_at: datetime, opened_at: datetime) -> None:
    """No consent takes effect before its account existed: a backdated grant would let events from before the opening
    score (issue 17). A revocation is held to the same rule: there was nothing to withdraw before."""
    if effective_at < opened_at:
        raise InvalidArgument("effective_at", "may not be before the account was opened", reason="INVALID_EFFECTIVE_AT")


@dataclass(frozen=True)
class ConsentRecord:
    """One grant or revocation as ListConsents shows it."""

    account_number: str
    category: DataCategory
    action: ConsentAction
    effective_at: datetime
    channel: Channel
    recorded_by: str
    # The guardian who decided for a holder under 14; empty when the holder decided.
    guardian_account_number: str = ""


@dataclass(frozen=True)
class Question:
    """May an event of `category` that happened `at` score for the account?"""

    account_number: str
    category: int
    at: datetime | None


@dataclass(frozen=True)
class ConsentEvent:
    """One grant or revocation in an account's history, in recording order within equal effective times."""

    category: DataCategory
    action: ConsentAction
    effective_at: datetime
    sequence: int


@dataclass(frozen=True)
class ConsentTimeline:
    """What CheckConsents needs about one account: whether it can score at all, and its consent history."""

    known: bool
    state: AccountState = AccountState.OPEN
    events: Sequence[ConsentEvent] = field(default_factory=tuple)


UNKNOWN_TIMELINE = ConsentTimeline(known=False)


@dataclass(frozen=True)
class ConsentVerdict:
    allowed: bool
    reason: str = ""


ALLOWED = ConsentVerdict(True)
# One instance per answer: a batch decides hundreds of questions and needs no new object for each.
UNKNOWN_ACCOUNT = ConsentVerdict(False, "UNKNOWN_ACCOUNT")
ACCOUNT_CLOSED = ConsentVerdict(False, "ACCOUNT_CLOSED")
CONSENT_MISSING = ConsentVerdict(False, "CONSENT_MISSING")
CONSENT_REVOKED = ConsentVerdict(False, "CONSENT_REVOKED")


def decide_consent(timeline: ConsentTimeline, category: DataCategory, at: datetime) -> ConsentVerdict:
    """May an event of `category` that happened at `at` score? The latest grant or revocation in force at `at` decides.

    An event before a revocation still scores (the consent held when it happened); one after it does not.
    """
    if not timeline.known:
        return UNKNOWN_ACCOUNT
    if timeline.state is not AccountState.OPEN:
        return ACCOUNT_CLOSED
    in_force: ConsentEvent | None = None
    for event in timeline.events:
        if event.category is not category or event.effective_at > at:
            continue
        if in_force is None or (event.effective_at, event.sequence) > (in_force.effective_at, in_force.sequence):
            in_force = event
    if in_force is None:
        return CONSENT_MISSING
    if in_force.action is ConsentAction.REVOKE:
        return CONSENT_REVOKED
    return ALLOWED


def granted_categories(timeline: ConsentTimeline, at: datetime) -> list[DataCategory]:
    """The categories whose consent is in force at `at` (closing revokes exactly these)."""
    return [category for category in DataCategory if decide_consent(timeline, category, at).allowed]
