"""Whose accounts a transfer joins: both exist and are open, and belong to one person unless policy allows otherwise.

One person is recognised by identity's national person key (Account.person_key, a keyed hash of the ID number that
is the same in every region); the raw ID number never reaches the gateway.
"""

from __future__ import annotations

from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.callers import GatewayConfig
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain import TransferRequest
from service_kit.errors import FailedPrecondition, NotFound

NOT_FOUND_REASONS = ("UNKNOWN_ACCOUNT", "ACCOUNT_NOT_FOUND")


def open_account(clients: RegionClients, region: str, number: str, field: str, timeout_s: float) -> identity.Account:
    """The account from identity in its home region; NOT_FOUND, ACCOUNT_CLOSED, or UNAVAILABLE when it is down."""
    try:
        response = call(
            region, clients.identity(region).GetAccount, identity.GetAccountRequest(account_number=number), timeout_s
        )
    except RemoteError as error:
        if error.code.name == "NOT_FOUND" or (error.final and error.reason in NOT_FOUND_REASONS):
            raise NotFound("UNKNOWN_ACCOUNT", f"{field}: no account {number}", {"field": field}) from None
        raise error.as_unavailable() from None
    if response.account.state != identity.ACCOUNT_STATE_OPEN:
        raise FailedPrecondition("ACCOUNT_CLOSED", f"{field}: account {number} is closed", {"field": field})
    return response.account


def check_accounts(clients: RegionClients, config: GatewayConfig, request: TransferRequest, timeout_s: float) -> None:
    """Read-only: a region that is down answers UNAVAILABLE and nothing is stored."""
    source = open_account(clients, request.from_region, request.from_account, "from_account", timeout_s)
    target = open_account(clients, request.to_region, request.to_account, "to_account", timeout_s)
    if (
        config.policy(request.from_region).transfers_between_persons
        and config.policy(request.to_region).transfers_between_persons
    ):
        return
    if not source.person_key or not target.person_key:
        raise FailedPrecondition(
            "PERSON_KEY_UNAVAILABLE",
            "identity does not expose the national person key, so one person's ownership cannot be checked",
        )
    if source.person_key != target.person_key:
        raise FailedPrecondition(
            "DIFFERENT_PERSONS",
            "points move only between one person's own accounts unless both regions' policy allows otherwise",
            {"from_region": request.from_region, "to_region": request.to_region},
        )
