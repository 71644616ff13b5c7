"""The accounts a transfer joins, read from identity in their home regions: both exist and are open, and belong to
one person unless both regions' policies allow otherwise (the rule: gateway.domain.ownership)."""

from __future__ import annotations

from collections.abc import Callable

from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.clients import RegionClients, RemoteError, call_later
from gateway.domain.callers import GatewayConfig
from gateway.domain.ownership import require_one_person
from gateway.domain.transfers import TransferRequest
from service_kit.errors import FailedPrecondition, NotFound

NOT_FOUND_REASONS = ("UNKNOWN_ACCOUNT", "ACCOUNT_NOT_FOUND")


def open_account(clients: RegionClients, region: str, number: str, field: str, timeout_s: float) -> identity.Account:
    """The account from identity in its home region, without its channel bindings; NOT_FOUND, ACCOUNT_CLOSED, or
    UNAVAILABLE when it is down."""
    return _open_account(_ask_account(clients, region, number, timeout_s), number, field)


def _ask_account(
    clients: RegionClients, region: str, number: str, timeout_s: float
) -> Callable[[], identity.GetAccountResponse]:
    # Whether the account is open and whose it is: its channel bindings are not needed (one read fewer in identity).
    request = identity.GetAccountRequest(account_number=number, view=identity.ACCOUNT_VIEW_BASIC)
    return call_later(region, clients.identity(region).GetAccount, request, timeout_s)


def _open_account(answer: Callable[[], identity.GetAccountResponse], number: str, field: str) -> identity.Account:
    try:
        response = answer()
    except RemoteError as error:
        if error.code.name == "NOT_FOUND" or (error.final and error.reason in NOT_FOUND_REASONS):
            raise NotFound("UNKNOWN_ACCOUNT", f"{field}: no account {number}", {"field": field}) from None
        raise error.as_unavailable() from None
    if response.account.state != identity.ACCOUNT_STATE_OPEN:
        raise FailedPrecondition("ACCOUNT_CLOSED", f"{field}: account {number} is closed", {"field": field})
    return response.account


def check_accounts(clients: RegionClients, config: GatewayConfig, request: TransferRequest, timeout_s: float) -> None:
    """Read-only: a region that is down answers UNAVAILABLE and nothing is stored. Both regions are asked at once;
    their answers are judged source first, as when they were asked one after the other."""
    source_answer = _ask_account(clients, request.from_region, request.from_account, timeout_s)
    target_answer = _ask_account(clients, request.to_region, request.to_account, timeout_s)
    source = _open_account(source_answer, request.from_account, "from_account")
    target = _open_account(target_answer, request.to_account, "to_account")
    require_one_person(
        request,
        source.person_key,
        target.person_key,
        config.allows_transfers_between_persons(request.from_region, request.to_region),
    )
