"""Whose accounts a transfer joins: one person's own, unless both regions' policies allow transfers between persons.

One person is recognised by identity's national person key (a keyed hash of the ID number that is the same in every
region); the raw ID number never reaches the gateway.
"""

from __future__ import annotations

from gateway.domain.transfers import TransferRequest
from service_kit.errors import FailedPrecondition


def require_one_person(
    request: TransferRequest, source_person_key: str, target_person_key: str, between_persons_allowed: bool
) -> None:
    """FAILED_PRECONDITION unless the two accounts are one person's (or policy lets points move between persons)."""
    if between_persons_allowed:
        return
    if not source_person_key or not target_person_key:
        raise FailedPrecondition(
            "PERSON_KEY_UNAVAILABLE",
            "identity does not expose the national person key, so one person's ownership cannot be checked",
        )
    if source_person_key != target_person_key:
        raise FailedPrecondition(
            "DIFFERENT_PERSONS",
            "points move only between one person's own accounts unless both regions' policy allows otherwise",
            {"from_region": request.from_region, "to_region": request.to_region},
        )
