"""Clients of the region's other services, one class per peer: ingest (accepted events, in order), identity
(PERSONALISATION consent and whether a holder is a minor) and the ledger (campaign budgets and bonuses).

Every call has a deadline; a peer that is down or slow is UNAVAILABLE (retry), never INTERNAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from carbon.ingest.v1 import ingest_service_pb2 as gpb
from carbon.ingest.v1 import ingest_service_pb2_grpc as gpb_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from service_kit.errors import Unavailable
from service_kit.peers import Peer
from service_kit.settings import Settings
from service_kit.wire import from_timestamp, to_timestamp, to_unix_us

DEFAULT_DEADLINE_S = 5.0


@dataclass(frozen=True)
class AcceptedEvent:
    partner_id: str
    event_id: str
    account_number: str
    behaviour: str
    occurred_at: datetime
    points: int

    @property
    def ref(self) -> str:
        return f"{self.partner_id}/{self.event_id}"


class IngestClient(Peer[gpb_grpc.IngestServiceStub]):
    def __init__(self, address: str, settings: Settings, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        super().__init__("ingest", gpb_grpc.IngestServiceStub, address, deadline_s, settings)

    def accepted_after(self, page_token: str, page_size: int) -> tuple[list[AcceptedEvent], str]:
        request = gpb.ListAcceptedEventsRequest(page_token=page_token, page_size=page_size)
        try:
            response = self.stub().ListAcceptedEvents(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        found = [
            AcceptedEvent(
                e.partner_id, e.event_id, e.account_number, e.behaviour, from_timestamp(e.occurred_at), e.points
            )
            for e in response.events
        ]
        return found, response.next_page_token

    def behaviour_codes(self, region_code: str) -> frozenset[str]:
        """Every behaviour this region's catalog offers (the national ones and the region's own extras)."""
        codes: set[str] = set()
        page_token = ""
        while True:
            request = gpb.ListBehavioursRequest(region_code=region_code, page_size=500, page_token=page_token)
            try:
                response = self.stub().ListBehaviours(request, timeout=self.deadline_s)
            except grpc.RpcError as error:
                raise self.failed(error) from None
            codes.update(behaviour.code for behaviour in response.behaviours)
            page_token = response.next_page_token
            if not page_token:
                return frozenset(codes)


class IdentityClient(Peer[ipb_grpc.IdentityServiceStub]):
    def __init__(self, address: str, settings: Settings, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        super().__init__("identity", ipb_grpc.IdentityServiceStub, address, deadline_s, settings)

    def personalisation_allowed(self, account_numbers: Sequence[str], at: datetime) -> dict[str, bool]:
        """Whether each account's PERSONALISATION consent is in force at `at` (an unknown or closed account: no)."""
        if not account_numbers:
            return {}
        request = ipb.CheckConsentColumnsRequest(
            account_numbers=list(account_numbers),
            categories=[common_pb2.DATA_CATEGORY_PERSONALISATION] * len(account_numbers),
            at_us=[to_unix_us(at)] * len(account_numbers),
        )
        try:
            response = self.stub().CheckConsentColumns(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        if len(response.allowed) != len(account_numbers):
            raise Unavailable("IDENTITY_BAD_ANSWER", f"identity answered {len(response.allowed)} questions")
        return dict(zip(account_numbers, response.allowed, strict=True))

    def is_minor(self, account_number: str) -> bool:
        try:
            response = self.stub().GetAccount(
                ipb.GetAccountRequest(account_number=account_number), timeout=self.deadline_s
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False  # no such account: its consent check already said no
            raise self.failed(error) from None
        return response.account.minor


@dataclass(frozen=True)
class Posting:
    """One transfer for the ledger; `linked` chains it to the next one (all or nothing)."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    code: int
    reference: str = ""
    earned_at: datetime | None = None
    linked: bool = False
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PostingResult:
    posted: bool  # POSTED or ALREADY_POSTED
    failure_reason: str


class LedgerClient(Peer[lpb_grpc.LedgerServiceStub]):
    def __init__(self, address: str, settings: Settings, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        super().__init__("ledger", lpb_grpc.LedgerServiceStub, address, deadline_s, settings)

    def post(self, postings: Sequence[Posting]) -> list[PostingResult]:
        request = lpb.PostTransfersRequest(transfers=[_transfer(p) for p in postings])
        try:
            response = self.stub().PostTransfers(request, timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        posted = (lpb.TRANSFER_STATUS_POSTED, lpb.TRANSFER_STATUS_ALREADY_POSTED)
        return [PostingResult(r.status in posted, r.failure_reason) for r in response.results]

    def balance(self, account: str) -> int:
        try:
            response = self.stub().GetBalance(lpb.GetBalanceRequest(account=account), timeout=self.deadline_s)
        except grpc.RpcError as error:
            raise self.failed(error) from None
        return response.balance.available_points


def _transfer(posting: Posting) -> lpb.Transfer:
    transfer = lpb.Transfer(
        transfer_id=posting.transfer_id,
        debit_account=posting.debit_account,
        credit_account=posting.credit_account,
        amount_points=posting.amount_points,
        code=posting.code,  # type: ignore[arg-type]
        reference=posting.reference,
        linked=posting.linked,
        metadata=dict(posting.metadata),
    )
    if posting.earned_at is not None:
        transfer.earned_at.CopyFrom(to_timestamp(posting.earned_at))
    return transfer
