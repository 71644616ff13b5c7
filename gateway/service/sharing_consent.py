"""Cross-region sharing consent (PIPL art. 23, issue 17, ADR 0610): before the directory, a cross-region transfer or
a redemption anywhere makes one region's data about a person known to another, the person's consent to that
sharing (DATA_CATEGORY_CROSS_REGION_SHARING) must be in force now on each account involved, asked of identity in the
account's home region. A refusal names the category and the field. Only new sharing is checked: a transfer already
recorded is driven to its end and settled history stays, whatever the consent says since.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.clients import RegionClients, RemoteError, ask_later, call, call_later
from service_kit.coalescing import Coalescer
from service_kit.errors import FailedPrecondition
from service_kit.wire import to_timestamp

log = logging.getLogger("carbon.gateway.consent")
CATEGORY = "DATA_CATEGORY_CROSS_REGION_SHARING"
# identity's answers that mean "no consent" (the account problems are check_accounts' to report).
REFUSALS = ("CONSENT_MISSING", "CONSENT_REVOKED")
# Bounds of a group of questions to one region: more arrivals wait for the next call (identity takes 10,000).
MAX_GROUP_QUESTIONS = 500
# Calls in flight per region: while these are busy, arrivals gather into the next group.
SLOTS_PER_REGION = 2


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
        request = identity.CheckConsentsRequest(questions=[_question(number, at)])
        answer = call_later(region, clients.identity(region).CheckConsents, request, timeout_s)
        asked.append((field, _only_answer(answer)))
    return lambda: _judge(asked)


class SharingConsentQuestions:
    """ask_sharing_consent for requests that arrive together (cross-region transfers, redeem anywhere): the
    questions of concurrent requests to one region travel in one CheckConsents call, which answers each question on
    its own and in order, exactly as a call of one would (each keeps its own `at`). A region that does not answer
    fails every member, as it would have alone; a final error of the whole call asks its questions again one by one,
    so one bad question never decides another's answer; a question out of time is asked alone at once. The
    questions of a request still go out at once, each on the shared question pool (ADR 0622)."""

    def __init__(self, clients: RegionClients, slots_per_region: int = SLOTS_PER_REGION) -> None:
        self.clients = clients
        self._groups: Coalescer[_Question, ConsentAnswer] = Coalescer(
            self._ask_group, slots_per_region, MAX_GROUP_QUESTIONS
        )

    def ask(self, accounts: Sequence[tuple[str, str]], now: datetime, timeout_s: float) -> Callable[[], None]:
        """As ask_sharing_consent."""
        at = to_timestamp(now)
        asked = []
        for field, number in accounts:
            region = self.clients.registry.route(number, field).region_code
            asked.append((field, ask_later(self._answer, _Question(region, _question(number, at), timeout_s))))
        return lambda: _judge(asked)

    def _answer(self, question: _Question) -> identity.ConsentAnswer:
        answer = self._groups.submit(question.region_code, question, 1)
        if isinstance(answer, RemoteError):
            raise answer
        return answer

    def _ask_group(self, questions: Sequence[_Question]) -> list[ConsentAnswer]:
        if len(questions) > 1 and any(q.timeout_s <= 0 for q in questions):  # out of time: answered alone, at once
            return [answer for question in questions for answer in self._ask_group([question])]
        region = questions[0].region_code
        request = identity.CheckConsentsRequest(questions=[q.question for q in questions])
        try:
            response = call(
                region, self.clients.identity(region).CheckConsents, request, min(q.timeout_s for q in questions)
            )
        except RemoteError as error:
            if not error.final or len(questions) == 1:
                return [error] * len(questions)
            log.warning("grouped consent questions were refused; asking them one by one", extra={"error": str(error)})
            return [answer for question in questions for answer in self._ask_group([question])]
        assert len(response.answers) == len(questions), "identity answers every question"
        return list(response.answers)


class _Question(NamedTuple):
    region_code: str
    question: identity.ConsentQuestion
    timeout_s: float  # the group's call ends by its members' earliest deadline


ConsentAnswer = identity.ConsentAnswer | RemoteError


def _question(number: str, at: Timestamp) -> identity.ConsentQuestion:
    return identity.ConsentQuestion(
        account_number=number, category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING, at=at
    )


def _only_answer(answer: Callable[[], identity.CheckConsentsResponse]) -> Callable[[], identity.ConsentAnswer]:
    def only() -> identity.ConsentAnswer:
        [reply] = answer().answers
        return reply

    return only


def _judge(asked: Sequence[tuple[str, Callable[[], identity.ConsentAnswer]]]) -> None:
    """Raises for the first account, in the order asked, without consent; UNAVAILABLE when its region is silent."""
    for field, answer in asked:
        try:
            reply = answer()
        except RemoteError as error:
            raise error.as_unavailable() from None
        reason = "" if reply.allowed else reply.reason
        if reason in REFUSALS:
            raise FailedPrecondition(
                reason,
                f"{field}: the person has not consented to sharing their data with another region"
                + (" (withdrawn)" if reason == "CONSENT_REVOKED" else ""),
                {"field": field, "category": CATEGORY},
            )
