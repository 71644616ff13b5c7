"""Whether an account exists, asked of identity in its home region once per account and gateway process.

Identity owns accounts; the ledger and rewards keep rows only for accounts that have moved points, so a read of an
account opened but never credited and of a number never issued look alike there (zeros, an empty page). The gateway
tells them apart before it forwards such a call: an account identity does not know is NOT_FOUND UNKNOWN_ACCOUNT, the
reason identity and the gateway's own methods already use. An account number, once issued, is never issued again and
a closed account stays known (closing erases personal data, not the number), so a positive answer stays true and is
kept; a negative one is asked again each time, since the account may be opened the next moment. ADR 0612.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.clients import RegionClients, RemoteError, call
from service_kit.errors import NotFound

# Known accounts kept per process (about 100 bytes each): a full cache forgets the account least recently used.
KNOWN_ACCOUNTS_KEPT = 200_000
NOT_FOUND_REASONS = ("UNKNOWN_ACCOUNT", "ACCOUNT_NOT_FOUND")


class KnownAccounts:
    def __init__(self, clients: RegionClients, kept: int = KNOWN_ACCOUNTS_KEPT) -> None:
        self._clients = clients
        self._kept = kept
        self._known: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def require(self, region: str, account_number: str, field: str, timeout_s: float) -> None:
        """Returns when identity in `region` knows the account; NOT_FOUND UNKNOWN_ACCOUNT (the field named) when it
        does not; UNAVAILABLE REGION_UNAVAILABLE when identity does not answer. Any other refusal of identity's tells
        nothing about the account: the call goes on to the region, which answers as it would have."""
        if self._remembered(account_number):
            return
        try:
            call(
                region,
                self._clients.identity(region).GetAccount,
                identity.GetAccountRequest(account_number=account_number),
                timeout_s,
            )
        except RemoteError as error:
            if error.final and error.reason in NOT_FOUND_REASONS:
                raise NotFound(
                    "UNKNOWN_ACCOUNT",
                    f"{field}: no account {account_number}",
                    {"field": field, "account_number": account_number},
                ) from None
            if not error.final:
                raise error.as_unavailable() from None
            return
        self._remember(account_number)

    def _remembered(self, account_number: str) -> bool:
        with self._lock:
            if account_number not in self._known:
                return False
            self._known.move_to_end(account_number)
            return True

    def _remember(self, account_number: str) -> None:
        with self._lock:
            self._known[account_number] = None
            self._known.move_to_end(account_number)
            while len(self._known) > self._kept:
                self._known.popitem(last=False)
