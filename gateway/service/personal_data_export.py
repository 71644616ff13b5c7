"""A copy of everything held about one person (PIPL art. 45, ADR 0208): read from the account's home region page by
page (identity, ingest, ledger, rewards) and from the gateway's own transfers, and written as one JSON document in
the documented format (docs/contract/personal-data-export.schema.json).

The gateway assembles it from the reads each region already serves, so the copy shows exactly what those reads show:
the person's own name, ID number and phone number masked as identity shows them everywhere, and other persons only by
account number (a guardian, the other account of a transfer or statement entry).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.identity.v1 import identity_service_pb2 as identity
from carbon.ingest.v1 import ingest_service_pb2 as ingest
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway import wire
from gateway.clients import RegionClients, RemoteError, acting_for, call
from gateway.domain.callers import Caller
from gateway.service.cross_region_transfers import TransferService
from service_kit.errors import DomainError, NotFound, PermissionDenied

# The version of the document's format: the schema's $id names it; a change that removes or renames a field is a new
# major version.
FORMAT_VERSION = "1"
_PAGE = 500  # the largest page every read serves
# StreamPersonalData's pieces: well under the 32 MiB message limit, small enough for any client's default (4 MiB).
CHUNK_BYTES = 1024 * 1024


def export_personal_data(
    transfers: TransferService, caller: Caller, account_number: str, timeout_s: float, now: datetime | None = None
) -> str:
    """The export of the account's person as JSON, for their own platform or a national operator."""
    clients = transfers.clients
    home = clients.registry.route(account_number).region_code
    caller.require_region(home, "account_number")
    reads = _RegionReads(clients, home, caller, timeout_s)
    account = reads.account(account_number)
    bindings = reads.all(
        clients.identity(home).ListBindings, identity.ListBindingsRequest(account_number=account_number), "bindings"
    )
    if not caller.operator:
        _require_bound(caller, bindings)
    document = {
        "format_version": FORMAT_VERSION,
        "exported_at": (now or datetime.now(UTC)).isoformat(),
        "account_number": account_number,
        "account": _account_fields(account),
        "bindings": [_fields(binding) for binding in bindings],
        "consents": [
            _fields(consent)
            for consent in reads.all(
                clients.identity(home).ListConsents,
                identity.ListConsentsRequest(account_number=account_number),
                "consents",
            )
        ],
        "events": [
            _fields(event)
            for event in reads.all(
                ingest_service_pb2_grpc.IngestServiceStub(clients.channel(home, "ingest")).ListAccountEvents,
                ingest.ListAccountEventsRequest(account_number=account_number),
                "events",
            )
        ],
        "statement": [
            _fields(entry)
            for entry in reads.all(
                clients.ledger(home).ListStatementEntries,
                ledger.ListStatementEntriesRequest(account=account_number),
                "entries",
            )
        ],
        "vouchers": [
            _fields(voucher)
            for voucher in reads.all(
                clients.rewards(home).ListVouchers,
                rewards.ListVouchersRequest(account_number=account_number),
                "vouchers",
            )
        ],
        "cross_region_transfers": [_fields(transfer) for transfer in _transfers(transfers, caller, account_number)],
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


def document_chunks(document: bytes, size: int = CHUNK_BYTES) -> Iterator[tuple[bytes, bool, int]]:
    """The document in pieces of at most `size` bytes: (chunk, last, total bytes on the last piece else 0); an empty
    document is one empty last piece."""
    total = len(document)
    starts = range(0, total, size) if total else range(1)
    for start in starts:
        last = start + size >= total
        yield document[start : start + size], last, total if last else 0


def _require_bound(caller: Caller, bindings: list[Any]) -> None:
    """A platform sees only its own users' data: it must hold a binding on the account (as ADR 0207 for
    corrections)."""
    if not caller.platform or caller.platform not in {binding.platform for binding in bindings}:
        raise PermissionDenied(
            "PLATFORM_NOT_BOUND",
            "only the person's own platform (one holding a binding on the account) may export their data",
            {"field": "account_number", "platform": caller.platform},
        )


def _transfers(transfers: TransferService, caller: Caller, account_number: str) -> Iterator[gw.CrossRegionTransfer]:
    token = ""
    while True:
        page, token = transfers.list_page(caller, account_number, None, _PAGE, token)
        yield from (wire.transfer_message(transfer) for transfer in page)
        if not token:
            return


def _account_fields(account: identity.Account) -> dict[str, Any]:
    """The account without its bindings' full platform user ids: the bindings section shows them masked, as every
    platform sees another platform's binding."""
    fields = _fields(account)
    del fields["bindings"]
    return fields


def _fields(message: Message) -> dict[str, Any]:
    """A message as its proto3 JSON with the proto's field names and every field present (int64 as strings)."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


class _RegionReads:
    """The home region's reads, made for the external caller (the region applies its own checks to them too)."""

    def __init__(self, clients: RegionClients, region: str, caller: Caller, timeout_s: float) -> None:
        self._region = region
        self._identity = clients.identity(region)
        self._metadata = acting_for(caller.caller_id, caller.platform)
        self._timeout_s = timeout_s

    def _call(self, method: Callable[..., Any], request: Message) -> Any:
        try:
            return call(self._region, method, request, self._timeout_s, self._metadata)
        except RemoteError as error:
            if error.final and error.reason == "UNKNOWN_ACCOUNT":
                raise NotFound("UNKNOWN_ACCOUNT", "no such account", {"field": "account_number"}) from None
            if error.final:
                raise _Refused(error) from None
            raise error.as_unavailable() from None

    def account(self, account_number: str) -> identity.Account:
        request = identity.GetAccountRequest(account_number=account_number)
        found: identity.GetAccountResponse = self._call(self._identity.GetAccount, request)
        return found.account

    def all(self, method: Callable[..., Any], request: Any, items: str) -> list[Any]:
        """Every item of a paged read, following next_page_token to the end."""
        found: list[Any] = []
        request.page_size = _PAGE
        while True:
            page = self._call(method, request)
            found.extend(getattr(page, items))
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token


class _Refused(DomainError):
    """The home region refused one of the reads: its code and reason, passed on."""

    def __init__(self, error: RemoteError) -> None:
        super().__init__(error.reason or error.code.name, error.message, {"region": error.region_code})
        self.code = error.code
