"""The consent phase of a submission: each candidate's account found and checked with ONE identity call (consents
as columns), after resolving only the events that name a channel binding or a phone number."""

from __future__ import annotations

from collections.abc import Mapping

from ingest_svc.clients import ConsentAnswer, ConsentQuestion, IdentityClient, Resolved
from ingest_svc.domain import events as ev
from ingest_svc.domain.batches import Candidate
from ingest_svc.domain.results import Result, rejected
from service_kit.accounts import region_of

# A candidate with the number of the account it credits.
Owned = tuple[Candidate, str]
_ACCOUNT_PROBLEMS = {ev.UNKNOWN_ACCOUNT: "account: not found", ev.ACCOUNT_CLOSED: "account: closed"}


class ConsentCheck:
    def __init__(self, identity: IdentityClient, region_code: str) -> None:
        self._identity = identity
        self._region_code = region_code  # "" accepts accounts of any region (tests of the domain only)

    def owners(self, candidates: Mapping[str, Candidate], outcomes: dict[str, Result]) -> dict[str, Owned]:
        """By event id, in the candidates' order: the events whose account exists in this region and consented to
        the behaviour's data category at the event's time, with their account number. Every other candidate's
        rejection is put in `outcomes`.

        An account number goes straight to the consent check, which also answers UNKNOWN_ACCOUNT and
        ACCOUNT_CLOSED: one identity call per batch instead of two.
        """
        resolved = self._resolve_references(candidates)
        region = self._region_code
        questions: dict[str, ConsentQuestion] = {}
        for event_id, candidate in candidates.items():
            valid = candidate.valid
            number = valid.event.account.account_number or _resolved_number(event_id, resolved[event_id], outcomes)
            if not number:
                continue
            if region and region_of(number) != region:
                outcomes[event_id] = self._not_in_region(event_id, number)
                continue
            occurred_at = valid.event.occurred_at
            assert occurred_at is not None  # validation refuses an event without one
            questions[event_id] = ConsentQuestion(number, valid.behaviour.category, occurred_at)
        answers = self._identity.check_consents(list(questions.values()))
        return _consented(questions, answers, candidates, outcomes)

    def _resolve_references(self, candidates: Mapping[str, Candidate]) -> dict[str, Resolved]:
        """The accounts of the events that name a channel binding or a phone number, by event id."""
        by_reference = {
            event_id: candidate.valid.event.account
            for event_id, candidate in candidates.items()
            if not candidate.valid.event.account.account_number
        }
        return dict(zip(by_reference, self._identity.resolve(list(by_reference.values())), strict=True))

    def _not_in_region(self, event_id: str, number: str) -> Result:
        home = region_of(number)
        message = (
            f"account: its home region is {home}, not this platform's {self._region_code}; submit it to its home region"
        )
        return rejected(event_id, ev.ACCOUNT_NOT_IN_REGION, message)


def _resolved_number(event_id: str, account: Resolved, outcomes: dict[str, Result]) -> str:
    """The resolved account's number, or "" with the event's rejection put in `outcomes` (not found, or closed)."""
    if account.account_number and not account.closed:
        return account.account_number
    reason = ev.ACCOUNT_CLOSED if account.account_number else ev.UNKNOWN_ACCOUNT
    outcomes[event_id] = rejected(event_id, reason, _ACCOUNT_PROBLEMS[reason])
    return ""


def _consented(
    questions: Mapping[str, ConsentQuestion],
    answers: list[ConsentAnswer],
    candidates: Mapping[str, Candidate],
    outcomes: dict[str, Result],
) -> dict[str, Owned]:
    owners: dict[str, Owned] = {}
    for (event_id, question), answer in zip(questions.items(), answers, strict=True):
        if answer.allowed:
            owners[event_id] = (candidates[event_id], question.account_number)
        elif answer.reason in _ACCOUNT_PROBLEMS:
            outcomes[event_id] = rejected(event_id, answer.reason, _ACCOUNT_PROBLEMS[answer.reason])
        else:
            category = candidates[event_id].valid.behaviour.category
            # A withdrawn consent is named as such: the resident chose it, unlike one never asked for (issue 17).
            reason = ev.CONSENT_REVOKED if answer.reason == ev.CONSENT_REVOKED else ev.CONSENT_MISSING
            message = f"no {category} consent at the event's time ({answer.reason or 'not granted'})"
            outcomes[event_id] = rejected(event_id, reason, message)
    return owners
