"""Minors and guardians (PIPL art. 31, ADR 0206): under 14 a guardian decides for the person.

An account for a child under 14 opens only with a guardian: an open account of an adult (18 or over by their own ID
number) recorded on the child's account. Until the child's 14th birthday (China Standard Time) the child's consents
are given and withdrawn by the guardian alone; from that day on they are the holder's own, and the hand-over is
recorded. Who acts for the guardian is judged as for resident authorizations (ADR 0205): the gateway speaking for a
platform that holds a binding on the guardian's account, or the ops API at a counter where the guardian is present.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

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


def require_eligible_guardian(state: int | None, guardian_id_number: str, today: date) -> None:
    """The guardian's account is open and its holder an adult; `state` is None when there is no such account here."""
    if state is None or state != AccountState.OPEN or not guardian_id_number:
        raise FailedPrecondition(
            "GUARDIAN_NOT_ELIGIBLE",
            "the guardian must hold an open account in this region",
            {"field": "guardian_account_number"},
        )
    if is_under(guardian_id_number, GUARDIAN_MIN_AGE, today):
        raise FailedPrecondition(
            "GUARDIAN_NOT_ELIGIBLE", "the guardian must be 18 or over", {"field": "guardian_account_number"}
        )


def require_acting_for_guardian(requester: Requester, guardian_platforms: Collection[str]) -> None:
    """The guardian is the one asking: through their own platform (a binding on their account), or at the counter."""
    if requester.is_ops_api:
        return
    if requester.is_gateway and requester.platform and requester.platform in guardian_platforms:
        return
    raise PermissionDenied(
        "GUARDIAN_NOT_ACTING",
        "only the guardian, through a platform bound to their account or at a counter, may do this for a minor",
        {"field": "guardian_account_number", "platform": requester.platform},
    )


def under_guardian(control_passes: datetime | None, now: datetime) -> bool:
    """Whether a guardian decides for the account now (recorded at opening: None for an adult's account)."""
    return control_passes is not None and now < control_passes
