"""Cross-region sharing consent (PIPL art. 23, issue 17, ADR 0610): before the directory, a cross-region transfer or
a redemption anywhere makes one region's data about a person known to another, the person's consent to that
sharing (DATA_CATEGORY_CROSS_REGION_SHARING) must be in force now on each account involved, asked of identity in the
account's home region. A refusal names the category and the field. Only new sharing is checked: a transfer already
recorded is driven to its end and settled history stays, whatever the consent says since.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.clients import RegionClients, RemoteError, call, call_later
from service_kit.errors import FailedPrecondition
from service_kit.wire import to_timestamp

CATEGORY = "DATA_CATEGORY_CROSS_REGION_SHARING"
# identity's answers that mean "no consent" (the account problems are check_accounts' to report).
REFUSALS = ("CONSENT_MISSING", "CONSENT_REVOKED")


def sharing_allowed(
    clients: RegionClients, region: str, account_numbers: Sequence[str], now: datetime, timeout_s: float
) -> list[str]:
    """identity's answer for each account of one region, in order: "" when sharing is consented now, else the
    reason (CONSENT_MISSING, CONSENT_REVOKED, UNKNOWN_ACCOUNT, ACCOUNT_CLOSED). RemoteError when it does not answer."""
    at = to_timestamp(now)
    questions = [
        identity.ConsentQuestion(account_number=number, category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING, at=at)
        for number in account_numbers
    ]
    answers = call(
        region,
        clients.identity(region).CheckConsents,
        identity.CheckConsentsRequest(questions=questions),
        timeout_s,
    ).answers
    return ["" if answer.allowed else answer.reason for answer in answers]


def require_sharing_consent(
    clients: RegionClients, accounts: Sequence[tuple[str, str]], now: datetime, timeout_s: float
) -> None:
    """Each (field, account number) has sharing consent in force now, else FAILED_PRECONDITION CONSENT_MISSING or
    CONSENT_REVOKED with metadata field and category; UNAVAILABLE when a home region does not answer."""
    ask_sharing_consent(clients, accounts, now, timeout_s)()


def ask_sharing_consent(
    clients: RegionClients, accounts: Sequence[tuple[str, str]], now: datetime, timeout_s: float
) -> Callable[[], None]:
    """Asks every home region at once and returns the check of their answers, which raises what
    require_sharing_consent raises, judging the accounts in the order given: the caller may check other things while
    the regions answer."""
    at = to_timestamp(now)
    asked = []
    for field, number in accounts:
        region = clients.registry.route(number, field).region_code
        question = identity.ConsentQuestion(
            account_number=number, category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING, at=at
        )
        request = identity.CheckConsentsRequest(questions=[question])
        asked.append((field, call_later(region, clients.identity(region).CheckConsents, request, timeout_s)))

    def check() -> None:
        for field, answer in asked:
            try:
                [reply] = answer().answers
            except RemoteError as error:
                raise error.as_unavailable() from None
            refuse_without_consent(field, "" if reply.allowed else reply.reason)

    return check


def refuse_without_consent(field: str, reason: str) -> None:
    """FAILED_PRECONDITION CONSENT_MISSING or CONSENT_REVOKED for identity's answer `reason` about the account in
    `field`; nothing for "" (consented) or an account problem (check_accounts reports those)."""
    if reason in REFUSALS:
        raise FailedPrecondition(
            reason,
            f"{field}: the person has not consented to sharing their data with another region"
            + (" (withdrawn)" if reason == "CONSENT_REVOKED" else ""),
            {"field": field, "category": CATEGORY},
        )
