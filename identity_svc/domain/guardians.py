"""Minors and guardians (PIPL art. 31, ADR 0206): under 14 a guardian decides for the person.

An account for a child under 14 opens only with a guardian: an open account of an adult (18 or over by their own ID
number) recorded on the child's account. Until the child's 14th birthday (China Standard Time) the child's consents
are given and withdrawn by the guardian alone; from that day on they are the holder's own, and the hand-over is
recorded. Who acts for the guardian is judged as for resident authorizations (ADR 0205): the gateway speaking for a
platform that holds a binding on the guardian's account, or the ops API at a counter where the guardian is present.
A guardian of another region is judged by their home region, asked through the gateway (ADR 0209).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from identity_svc.domain.accounts import AGE_OF_CONSENT, AccountState
from identity_svc.domain.real_name import birth_date, birthday_at_age, is_under
from identity_svc.domain.requesters import Requester
from service_kit.clock import start_of_china_day
from service_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

# A guardian is of full civil capacity (Civil Code art. 17).
GUARDIAN_MIN_AGE = 18


def control_passes_at(id_number: str) -> datetime:
    """The instant the holder decides for themselves: the start of their 14th birthday in China Standard Time."""
    return start_of_china_day(birthday_at_age(birth_date(id_number), AGE_OF_CONSENT))


def require_guardian_for_age(id_number: str, guardian_account_number: str, today: date) -> bool:
    """Whether the person needs a guardian today; a guardian named for a person who needs none is refused, so that
    nobody is put under another's control by mistake."""
    minor = is_under(id_number, AGE_OF_CONSENT, today)
    if minor and not guardian_account_number:
        raise FailedPrecondition(
            "GUARDIAN_REQUIRED",
            "the person is under 14: the account opens only with a guardian (guardian_account_number)",
            {"field": "guardian_account_number"},
        )
    if not minor and guardian_account_number:
        raise InvalidArgument("guardian_account_number", "is only for a person under 14")
    return minor


class GuardianStanding(IntEnum):
    """Whether an account may act as a guardian, as its home region judges it (carbon.identity.v1.GuardianStanding)."""

    UNSPECIFIED = 0
    ELIGIBLE = 1
    UNKNOWN_ACCOUNT = 2
    ACCOUNT_CLOSED = 3
    NOT_VERIFIED = 4
    NOT_ADULT = 5


@dataclass(frozen=True)
class GuardianAnswer:
    """A guardian's standing and whether the platform asking holds a binding on their account, from the guardian's
    home region: here, or another region through the gateway (ADR 0209). Nothing else about the guardian."""

    standing: GuardianStanding
    platform_bound: bool
    region_code: str


def standing_of(state: int | None, id_number: str, today: date) -> GuardianStanding:
    """The standing of an account here: `state` None when there is no such account, `id_number` "" when its real-name
    record is gone (a closed account's is erased)."""
    if state is None:
        return GuardianStanding.UNKNOWN_ACCOUNT
    if state != AccountState.OPEN:
        return GuardianStanding.ACCOUNT_CLOSED
    if not id_number:
        return GuardianStanding.NOT_VERIFIED
    if is_under(id_number, GUARDIAN_MIN_AGE, today):
        return GuardianStanding.NOT_ADULT
    return GuardianStanding.ELIGIBLE


_REFUSALS = {
    GuardianStanding.ACCOUNT_CLOSED: "the guardian's account is closed",
    GuardianStanding.NOT_VERIFIED: "the guardian's account holds no verified real-name record",
    GuardianStanding.NOT_ADULT: "the guardian must be 18 or over",
}


def require_eligible_guardian(answer: GuardianAnswer) -> None:
    """The guardian's account exists, is open and verified, and its holder is an adult; the refusal names which."""
    metadata = {"field": "guardian_account_number", "region": answer.region_code, "standing": answer.standing.name}
    if answer.standing == GuardianStanding.ELIGIBLE:
        return
    if answer.standing == GuardianStanding.UNKNOWN_ACCOUNT:
        raise FailedPrecondition(
            "GUARDIAN_NOT_FOUND", f"no account with that number in region {answer.region_code}", metadata
        )
    message = _REFUSALS.get(answer.standing, "the guardian's home region gave no standing")
    raise FailedPrecondition("GUARDIAN_NOT_ELIGIBLE", message, metadata)


def require_acting_for_guardian(requester: Requester, answer: GuardianAnswer) -> None:
    """The guardian is the one asking: through their own platform (a binding on their account), or at the counter of
    the region asked (the ops API, staff having verified the guardian in person)."""
    if requester.is_ops_api:
        return
    if requester.is_gateway and requester.platform and answer.platform_bound:
        return
    raise PermissionDenied(
        "GUARDIAN_NOT_ACTING",
        "only the guardian, through a platform bound to their account or at a counter, may do this for a minor",
        {"field": "guardian_account_number", "platform": requester.platform},
    )


def acting_platform(requester: Requester) -> str:
    """The platform whose binding on the guardian's account would show the guardian is asking ("" at a counter)."""
    return requester.platform if requester.is_gateway else ""


def under_guardian(control_passes: datetime | None, now: datetime) -> bool:
    """Whether a guardian decides for the account now (recorded at opening: None for an adult's account)."""
    return control_passes is not None and now < control_passes
