"""Consent decided from history: the latest grant or revocation in force when the event happened decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from identity_svc.domain.accounts import AccountState
from identity_svc.domain.consents import (
    ConsentAction,
    ConsentEvent,
    ConsentTimeline,
    DataCategory,
    decide_consent,
    granted_categories,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _timeline(*events: tuple[DataCategory, ConsentAction, datetime]) -> ConsentTimeline:
    return ConsentTimeline(
        True, AccountState.OPEN, tuple(ConsentEvent(c, a, t, i) for i, (c, a, t) in enumerate(events))
    )


def test_an_event_before_a_revocation_still_scores_and_one_after_does_not() -> None:
    timeline = _timeline(
        (DataCategory.TRANSIT, ConsentAction.GRANT, T0),
        (DataCategory.TRANSIT, ConsentAction.REVOKE, T0 + timedelta(days=10)),
    )
    assert decide_consent(timeline, DataCategory.TRANSIT, T0 + timedelta(days=9)).allowed
    after = decide_consent(timeline, DataCategory.TRANSIT, T0 + timedelta(days=11))
    assert (after.allowed, after.reason) == (False, "CONSENT_REVOKED")
    assert decide_consent(timeline, DataCategory.TRANSIT, T0 + timedelta(days=10)).reason == "CONSENT_REVOKED"


def test_an_event_before_any_grant_has_no_consent() -> None:
    timeline = _timeline((DataCategory.TRANSIT, ConsentAction.GRANT, T0))
    assert decide_consent(timeline, DataCategory.TRANSIT, T0 - timedelta(seconds=1)).reason == "CONSENT_MISSING"
    assert decide_consent(timeline, DataCategory.CYCLING, T0 + timedelta(days=1)).reason == "CONSENT_MISSING"


def test_granting_again_after_a_revocation_restores_scoring_from_then_on() -> None:
    timeline = _timeline(
        (DataCategory.CYCLING, ConsentAction.GRANT, T0),
        (DataCategory.CYCLING, ConsentAction.REVOKE, T0 + timedelta(days=1)),
        (DataCategory.CYCLING, ConsentAction.GRANT, T0 + timedelta(days=3)),
    )
    assert not decide_consent(timeline, DataCategory.CYCLING, T0 + timedelta(days=2)).allowed
    assert decide_consent(timeline, DataCategory.CYCLING, T0 + timedelta(days=4)).allowed
    assert granted_categories(timeline, T0 + timedelta(days=4)) == [DataCategory.CYCLING]


def test_at_equal_times_the_later_record_wins() -> None:
    timeline = _timeline(
        (DataCategory.UTILITIES, ConsentAction.GRANT, T0),
        (DataCategory.UTILITIES, ConsentAction.REVOKE, T0),
    )
    assert decide_consent(timeline, DataCategory.UTILITIES, T0).reason == "CONSENT_REVOKED"


def test_unknown_and_closed_accounts_never_score() -> None:
    assert decide_consent(ConsentTimeline(False), DataCategory.TRANSIT, T0).reason == "UNKNOWN_ACCOUNT"
    closing = ConsentTimeline(
        True, AccountState.CLOSING, _timeline((DataCategory.TRANSIT, ConsentAction.GRANT, T0)).events
    )
    assert decide_consent(closing, DataCategory.TRANSIT, T0 + timedelta(days=1)).reason == "ACCOUNT_CLOSED"
