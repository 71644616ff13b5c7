"""The national directory: all of one person's accounts across regions, with balances.

The person is found by the national person key (a keyed hash of the ID number, the same in every region), read from
identity in the account's home region. A region that does not answer is reported in the list, never as a failed call.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway.clients import RegionClients, RemoteError, call
from gateway.domain.callers import Caller
from gateway.domain.directory import DirectoryAccount
from gateway.service.sharing_consent import require_sharing_consent, sharing_allowed
from service_kit.errors import FailedPrecondition, NotFound


def directory_entry(
    clients: RegionClients, caller: Caller, account_number: str, timeout_s: float, now: datetime | None = None
) -> list[DirectoryAccount]:
    """The person's accounts in every region. The asked account's sharing consent must be in force (else
    CONSENT_MISSING/CONSENT_REVOKED naming account_number); a region whose account lacks it is listed without the
    account, with that reason as error_reason (ADR 0610)."""
    now = now or datetime.now(UTC)
    home = clients.registry.route(account_number).region_code
    caller.require_region(home, "account_number")
    try:
        found = call(
            home,
            clients.identity(home).GetAccount,
            identity.GetAccountRequest(account_number=account_number),
            timeout_s,
        )
    except RemoteError as error:
        if error.final:
            raise NotFound("UNKNOWN_ACCOUNT", f"no account {account_number}", {"field": "account_number"}) from None
        raise error.as_unavailable() from None
    key = found.account.person_key
    if not key:
        raise FailedPrecondition(
            "PERSON_KEY_UNAVAILABLE", "identity does not expose the national person key of this account"
        )
    require_sharing_consent(clients, [("account_number", account_number)], now, timeout_s)
    with ThreadPoolExecutor(max_workers=8) as pool:
        per_region = pool.map(
            lambda code: _region_accounts(clients, code, key, now, timeout_s), clients.registry.sorted_codes()
        )
        return [account for accounts in per_region for account in accounts]


def _region_accounts(
    clients: RegionClients, code: str, key: str, now: datetime, timeout_s: float
) -> list[DirectoryAccount]:
    try:
        found = call(
            code,
            clients.identity(code).FindAccountsByPersonKey,
            identity.FindAccountsByPersonKeyRequest(person_key=key),
            timeout_s,
        )
        numbers = [account.account_number for account in found.accounts]
        refusals = sharing_allowed(clients, code, numbers, now, timeout_s) if numbers else []
    except RemoteError as error:
        return [DirectoryAccount(account_number="", region_code=code, error_reason=_reason(error))]
    accounts = []
    for account, refusal in zip(found.accounts, refusals, strict=True):
        if refusal:
            # The region may not share this account: only the region and why nothing is shown from it.
            accounts.append(DirectoryAccount(account_number="", region_code=code, error_reason=refusal))
            continue
        try:
            balance = call(
                code,
                clients.ledger(code).GetBalance,
                ledger.GetBalanceRequest(account=account.account_number),
                timeout_s,
            ).balance
        except RemoteError as error:
            accounts.append(
                DirectoryAccount(account_number=account.account_number, region_code=code, error_reason=_reason(error))
            )
            continue
        accounts.append(
            DirectoryAccount(
                account_number=account.account_number,
                region_code=code,
                available_points=balance.available_points,
                held_points=balance.held_points,
            )
        )
    return accounts


def _reason(error: RemoteError) -> str:
    """REGION_UNAVAILABLE when the region did not answer, else what it refused with."""
    return (error.reason or error.code.name) if error.final else "REGION_UNAVAILABLE"
