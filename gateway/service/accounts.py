"""The accounts a transfer joins, read from identity in their home regions: both exist and are open, belong to one
person unless both regions' policies allow otherwise (the rule: gateway.domain.ownership), and the person consented
to sharing their data with the other region (gateway.service.sharing_consent). One call per region asks identity
both the account and its sharing consent (ADR 0623)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import grpc

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.clients import RegionClients, RemoteError, call, call_later
from gateway.domain.callers import GatewayConfig
from gateway.domain.ownership import require_one_person
from gateway.domain.transfers import TransferRequest
from gateway.service.sharing_consent import refuse_without_consent, sharing_allowed
from service_kit.errors import FailedPrecondition, NotFound
from service_kit.wire import to_timestamp

NOT_FOUND_REASONS = ("UNKNOWN_ACCOUNT", "ACCOUNT_NOT_FOUND")
Answer = Callable[[], identity.GetAccountResponse]


def open_account(clients: RegionClients, region: str, number: str, field: str, timeout_s: float) -> identity.Account:
    """The account from identity in its home region, without its channel bindings; NOT_FOUND, ACCOUNT_CLOSED, or
    UNAVAILABLE when it is down."""
    return _open_account(_ask_account(clients, region, number, timeout_s), number, field)


def _ask_account(
    clients: RegionClients,
    region: str,
    number: str,
    timeout_s: float,
    sharing_at: datetime | None = None,
    ask: Callable[[str, Any, Any, float], Answer] = call_later,
) -> Answer:
    # Whether the account is open and whose it is: its channel bindings are not needed (one read fewer in identity).
    request = identity.GetAccountRequest(account_number=number, view=identity.ACCOUNT_VIEW_BASIC)
    if sharing_at is not None:
        request.consent_category = common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING
        request.consent_at.CopyFrom(to_timestamp(sharing_at))
    return ask(region, clients.identity(region).GetAccount, request, timeout_s)


def _ask_when_judged(region: str, method: Any, request: Any, timeout_s: float) -> Answer:
    """The call made by the thread that judges its answer, when it does: for the question judged first, while the
    others run on the shared pool (one hand-off between threads fewer per transfer)."""
    return functools.partial(call, region, method, request, timeout_s)


def _answered(answer: Answer, number: str, field: str) -> identity.GetAccountResponse:
    try:
        return answer()
    except RemoteError as error:
        if error.code.name == "NOT_FOUND" or (error.final and error.reason in NOT_FOUND_REASONS):
            raise NotFound("UNKNOWN_ACCOUNT", f"{field}: no account {number}", {"field": field}) from None
        raise error.as_unavailable() from None


def _require_open(account: identity.Account, number: str, field: str) -> identity.Account:
    if account.state != identity.ACCOUNT_STATE_OPEN:
        raise FailedPrecondition("ACCOUNT_CLOSED", f"{field}: account {number} is closed", {"field": field})
    return account


def _open_account(answer: Answer, number: str, field: str) -> identity.Account:
    return _require_open(_answered(answer, number, field).account, number, field)


def check_accounts(
    clients: RegionClients,
    config: GatewayConfig,
    request: TransferRequest,
    now: datetime,
    timeout_s: float,
    consent_fields: tuple[str, str] = ("from_account", "to_account"),
) -> None:
    """Read-only: a region that is down answers UNAVAILABLE and nothing is stored. Both regions are asked at once, each
    once for its account and its sharing consent now; the answers are judged as when they were asked apart: the
    source account, the target account, one person, then the source's consent and the target's (named by
    `consent_fields`)."""
    target_answer = _ask_account(clients, request.to_region, request.to_account, timeout_s, now)
    source_answer = _ask_account(clients, request.from_region, request.from_account, timeout_s, now, _ask_when_judged)
    judge_accounts(clients, config, request, now, timeout_s, (source_answer, target_answer), consent_fields)


def judge_accounts(
    clients: RegionClients,
    config: GatewayConfig,
    request: TransferRequest,
    now: datetime,
    timeout_s: float,
    answers: tuple[Answer, Answer],
    consent_fields: tuple[str, str] = ("from_account", "to_account"),
) -> None:
    """Judges identity's answers on a transfer's (source, target) accounts, however they were asked (one GetAccount
    each, or a batch per region): the first refusal in check_accounts' order is raised."""
    asked = (
        (request.from_region, request.from_account, "from_account", consent_fields[0]),
        (request.to_region, request.to_account, "to_account", consent_fields[1]),
    )
    responses = []
    for answer, (_, number, field, _) in zip(answers, asked, strict=True):
        response = _answered(answer, number, field)
        _require_open(response.account, number, field)
        responses.append(response)
    source, target = (response.account for response in responses)
    require_one_person(
        request,
        source.person_key,
        target.person_key,
        config.allows_transfers_between_persons(request.from_region, request.to_region),
    )
    for response, (region, number, _, consent_field) in zip(responses, asked, strict=True):
        refuse_without_consent(consent_field, _sharing_reason(clients, region, number, response, now, timeout_s))


def _sharing_reason(
    clients: RegionClients,
    region: str,
    number: str,
    response: identity.GetAccountResponse,
    now: datetime,
    timeout_s: float,
) -> str:
    """identity's answer on sharing consent: "" when consented. An identity that does not know the question yet
    (an older release during a rolling update) left it unanswered: then it is asked on its own, as before."""
    if response.HasField("consent"):
        return "" if response.consent.allowed else response.consent.reason
    try:
        return sharing_allowed(clients, region, [number], now, timeout_s)[0]
    except RemoteError as error:
        raise error.as_unavailable() from None


def lookup_accounts(
    clients: RegionClients, region: str, numbers: Sequence[str], now: datetime, timeout_s: float
) -> Callable[[], dict[str, Answer]]:
    """Starts asking one region about many accounts and their sharing consent now, in one BatchGetAccounts call, and
    returns the wait for each number's answer, which answers or raises exactly as that account's GetAccount would
    (for judge_accounts). An identity that does not know BatchGetAccounts yet (UNIMPLEMENTED: an older release during
    a rolling update), or refuses the whole call, is asked one GetAccount per account instead."""
    unique = list(dict.fromkeys(numbers))
    request = identity.BatchGetAccountsRequest(
        account_numbers=unique,
        view=identity.ACCOUNT_VIEW_BASIC,
        consent_category=common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING,
        consent_at=to_timestamp(now),
    )
    batch = call_later(region, clients.identity(region).BatchGetAccounts, request, timeout_s)

    def answers() -> dict[str, Answer]:
        try:
            response = batch()
        except RemoteError as error:
            if error.final or error.code is grpc.StatusCode.UNIMPLEMENTED:
                return {number: _ask_account(clients, region, number, timeout_s, now) for number in unique}
            return {number: functools.partial(_raise, error) for number in unique}
        assert len(response.accounts) == len(unique), "identity answers every number"
        return {
            number: functools.partial(_as_get_account, region, number, lookup)
            for number, lookup in zip(unique, response.accounts, strict=True)
        }

    return answers


def _raise(error: RemoteError) -> identity.GetAccountResponse:
    raise error


def _as_get_account(region: str, number: str, lookup: identity.AccountLookup) -> identity.GetAccountResponse:
    """What GetAccount would have answered for one number of a batch: the account (and consent), or NOT_FOUND."""
    if not lookup.found:
        raise RemoteError(region, grpc.StatusCode.NOT_FOUND, "UNKNOWN_ACCOUNT", f"no account {number}")
    response = identity.GetAccountResponse(account=lookup.account)
    if lookup.HasField("consent"):
        response.consent.CopyFrom(lookup.consent)
    return response
