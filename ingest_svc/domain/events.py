"""An event as the domain sees it, the per-event rejection reasons, and field validation (one event at a time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from ingest_svc.domain.rules import MILLI, Behaviour, RuleBook, RuleVersion
from service_kit.accounts import is_account_number
from service_kit.clock import china_day

# The values made for every event of every batch are named tuples (docs/adr/0008-per-item-values-are-named-tuples.md).
# new_tuple(Kind, values) builds one from all its values in field order without calling the generated __new__: the
# same object as Kind(*values), for the places that build one per event. Unlike Kind(...) it does not count the
# values, so use it only where they are spelled out in full, and pin the field order with a test.
new_tuple = tuple.__new__
MAX_EVENT_ID_LENGTH = 128
MAX_EVIDENCE_LENGTH = 512
# Partners report the same riders day after day, and the Luhn sum is most of an event's field checks: the answer is
# remembered per distinct account number, within a bound.
KNOWN_ACCOUNT_NUMBERS = 65536
_is_account_number = lru_cache(maxsize=KNOWN_ACCOUNT_NUMBERS)(is_account_number)

# Reasons of one event's result (EventResult.reason).
UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
# The account's home region is not this platform's: only its home region's ledger can credit it (the gateway routes).
ACCOUNT_NOT_IN_REGION = "ACCOUNT_NOT_IN_REGION"
CONSENT_MISSING = "CONSENT_MISSING"
# The consent was granted once but withdrawn before the event happened (identity's CONSENT_REVOKED).
CONSENT_REVOKED = "CONSENT_REVOKED"
UNKNOWN_BEHAVIOUR = "UNKNOWN_BEHAVIOUR"
BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER = "BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER"
REGION_NOT_ALLOWED_FOR_PARTNER = "REGION_NOT_ALLOWED_FOR_PARTNER"
INVALID_QUANTITY = "INVALID_QUANTITY"
INVALID_EVENT_ID = "INVALID_EVENT_ID"
INVALID_ACCOUNT_REF = "INVALID_ACCOUNT_REF"
INVALID_REGION = "INVALID_REGION"
INVALID_OCCURRED_AT = "INVALID_OCCURRED_AT"
INVALID_TIER = "INVALID_TIER"
INVALID_EVIDENCE_REF = "INVALID_EVIDENCE_REF"
NO_RULE_IN_FORCE = "NO_RULE_IN_FORCE"
IMPLAUSIBLE = "IMPLAUSIBLE"
TOO_OLD = "TOO_OLD"
IN_FUTURE = "IN_FUTURE"
DAILY_CAP_REACHED = "DAILY_CAP_REACHED"
DUPLICATE_EVENT = "DUPLICATE_EVENT"
# Accepted with 0 points: another event (any partner, any region) claimed the same real-world activity first.
DUPLICATE_ACTIVITY = "DUPLICATE_ACTIVITY"
LEDGER_REJECTED = "LEDGER_REJECTED"


class AccountRef(NamedTuple):
    """carbon.common.v1.AccountRef: exactly one of account number, channel binding, phone number."""

    account_number: str = ""
    platform: str = ""
    platform_user_id: str = ""
    phone_number: str = ""

    @property
    def kind(self) -> str:
        if self.account_number:
            return "account_number"
        if self.platform or self.platform_user_id:
            return "binding"
        if self.phone_number:
            return "phone_number"
        return ""


class Event(NamedTuple):
    event_id: str
    account: AccountRef
    behaviour: str
    quantity_milli: int
    occurred_at: datetime | None  # aware, UTC
    region_code: str
    evidence_ref: str = ""
    tier: str = ""


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str


@dataclass(frozen=True)
class Acceptance:
    """How far from now an event's time may be: older than the window is TOO_OLD, later than the skew IN_FUTURE.
    A community centre's counter records a resident's sign-in sheet, up to a month of supervisor days at once, so
    its events have the longer counter window."""

    window: timedelta = timedelta(days=7)
    future_skew: timedelta = timedelta(minutes=5)
    counter_window: timedelta = timedelta(days=31)


@dataclass(frozen=True)
class PartnerScope:
    allowed_behaviours: frozenset[str]
    allowed_regions: frozenset[str]
    # A community centre's counter: its events have the acceptance's counter window.
    counter: bool = False


class ValidEvent(NamedTuple):
    event: Event
    behaviour: Behaviour
    rule: RuleVersion
    day: date  # the CST day the event happened on: caps, statistics and dedupe keys count per day


Validator = Callable[[Event], ValidEvent | Rejection]


def validate(
    event: Event, scope: PartnerScope, book: RuleBook, now: datetime, acceptance: Acceptance
) -> ValidEvent | Rejection:
    """Checks one event's fields, the partner's permission, the rule in force and plausibility; never raises."""
    return validator(scope, book, now, acceptance)(event)


def validator(scope: PartnerScope, book: RuleBook, now: datetime, acceptance: Acceptance) -> Validator:
    """validate() for the events of one batch: what they share (the acceptance bounds, the partner's scope, the
    book's look-ups) is computed once, not per event."""
    latest = now + acceptance.future_skew
    window = acceptance.counter_window if scope.counter else acceptance.window
    earliest = now - window
    allowed_behaviours, allowed_regions = scope.allowed_behaviours, scope.allowed_regions
    behaviour_in_region, rule_for = book.behaviour_in_region, book.rule_for

    def check(event: Event) -> ValidEvent | Rejection:
        event_id, account, code, quantity, occurred_at, region_code, evidence_ref, tier = event
        malformed = _malformed(event_id, account, region_code, evidence_ref)
        if malformed is not None:
            return malformed
        behaviour = behaviour_in_region(code, region_code)
        if behaviour is None:
            return Rejection(UNKNOWN_BEHAVIOUR, f"behaviour: {code!r} is not offered in {region_code}")
        if code not in allowed_behaviours:
            return Rejection(BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER, f"behaviour: this partner may not report {code}")
        if region_code not in allowed_regions:
            return Rejection(REGION_NOT_ALLOWED_FOR_PARTNER, f"region_code: partner may not report {region_code}")
        if occurred_at is None:
            return Rejection(INVALID_OCCURRED_AT, "occurred_at: required")
        if occurred_at > latest:
            return Rejection(IN_FUTURE, "occurred_at: in the future beyond the allowed clock skew")
        if occurred_at < earliest:
            return Rejection(TOO_OLD, f"occurred_at: older than the acceptance window of {window.days} days")
        if quantity <= 0:
            return Rejection(INVALID_QUANTITY, "quantity_milli: must be positive (thousandths of the unit)")
        rule = rule_for(code, region_code, occurred_at)
        if rule is None:
            return Rejection(NO_RULE_IN_FORCE, f"occurred_at: no rule for {code} was in force then")
        if behaviour.tiered:
            if tier not in rule.tier_points:
                return Rejection(INVALID_TIER, f"tier: must be one of {', '.join(sorted(rule.tier_points))}")
            if quantity % MILLI:
                return Rejection(INVALID_QUANTITY, f"quantity_milli: whole {behaviour.unit}s only (multiples of 1000)")
        elif tier:
            return Rejection(INVALID_TIER, f"tier: {code} has no tiers")
        if rule.max_quantity_milli and quantity > rule.max_quantity_milli:
            return Rejection(
                IMPLAUSIBLE, f"quantity_milli: {quantity} exceeds the plausible {rule.max_quantity_milli} per event"
            )
        return new_tuple(ValidEvent, (event, behaviour, rule, china_day(occurred_at)))

    return check


def _malformed(event_id: str, account: AccountRef, region_code: str, evidence_ref: str) -> Rejection | None:
    """The first field that is not well formed, whatever the rules say."""
    if not event_id or len(event_id) > MAX_EVENT_ID_LENGTH or not event_id.isprintable():
        return Rejection(INVALID_EVENT_ID, f"event_id: must be 1-{MAX_EVENT_ID_LENGTH} printable characters")
    # AccountRef.kind's cases in its order, each field read once.
    if account.account_number:
        if not _is_account_number(account.account_number):
            return Rejection(INVALID_ACCOUNT_REF, "account.account_number: not a 16-digit account number")
    elif account.platform or account.platform_user_id:
        if not (account.platform and account.platform_user_id):
            return Rejection(INVALID_ACCOUNT_REF, "account.binding: platform and platform_user_id are both required")
    elif not account.phone_number:
        return Rejection(INVALID_ACCOUNT_REF, "account: one of account_number, binding, phone_number is required")
    if len(region_code) != 6 or not region_code.isdigit():
        return Rejection(INVALID_REGION, "region_code: must be a 6-digit GB/T 2260 code")
    if len(evidence_ref) > MAX_EVIDENCE_LENGTH:
        return Rejection(INVALID_EVIDENCE_REF, f"evidence_ref: at most {MAX_EVIDENCE_LENGTH} characters")
    return None
