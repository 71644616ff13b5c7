"""Fixtures for ingest tests: an in-process ingest server over SQLite or PostgreSQL, with fake identity and ledger
gRPC servers (real gRPC, minimal semantics: idempotent transfers by id, consent history by time)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from ingest_svc import server as ingest_server
from ingest_svc.wire import sign_request, timestamp
from service_kit.accounts import new_account_number
from service_kit.db import make_engine, migrate
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 CST


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeIdentity(identity_service_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.accounts: dict[str, bool] = {}  # number -> closed
        self.bindings: dict[tuple[str, str], str] = {}
        self.consents: list[tuple[str, int, bool, datetime]] = []  # account, category, granted, at
        self.calls: dict[str, int] = {"resolve": 0, "consent": 0}

    def BatchResolveAccounts(
        self, request: ipb.BatchResolveAccountsRequest, context: object
    ) -> ipb.BatchResolveAccountsResponse:
        self.calls["resolve"] += 1
        out = []
        for ref in request.refs:
            number = ref.account_number or self.bindings.get((ref.binding.platform, ref.binding.platform_user_id), "")
            found = number in self.accounts
            state = ipb.ACCOUNT_STATE_CLOSED if found and self.accounts[number] else ipb.ACCOUNT_STATE_OPEN
            out.append(ipb.ResolvedAccount(account_number=number if found else "", found=found, state=state))
        return ipb.BatchResolveAccountsResponse(accounts=out)

    def CheckConsents(self, request: ipb.CheckConsentsRequest, context: object) -> ipb.CheckConsentsResponse:
        self.calls["consent"] += 1
        answers = []
        for q in request.questions:
            at = q.at.ToDatetime(tzinfo=UTC)
            history = [c for c in self.consents if c[0] == q.account_number and c[1] == q.category and c[3] <= at]
            allowed = bool(history) and history[-1][2]
            reason = "" if allowed else ("CONSENT_REVOKED" if history else "CONSENT_MISSING")
            answers.append(ipb.ConsentAnswer(allowed=allowed, reason=reason))
        return ipb.CheckConsentsResponse(answers=answers)


class FakeLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(self) -> None:
        self.transfers: dict[str, bytes] = {}
        self.balances: dict[str, int] = {}
        self.calls = 0

    def PostTransfers(self, request: lpb.PostTransfersRequest, context: object) -> lpb.PostTransfersResponse:
        self.calls += 1
        results = []
        for t in request.transfers:
            body = t.SerializeToString(deterministic=True)
            if t.transfer_id in self.transfers:
                same = self.transfers[t.transfer_id] == body
                status = lpb.TRANSFER_STATUS_ALREADY_POSTED if same else lpb.TRANSFER_STATUS_FAILED
                reason = "" if same else "IDEMPOTENCY_KEY_REUSED"
                results.append(lpb.TransferResult(transfer_id=t.transfer_id, status=status, failure_reason=reason))
                continue
            self.transfers[t.transfer_id] = body
            self.balances[t.credit_account] = self.balances.get(t.credit_account, 0) + t.amount_points
            self.balances[t.debit_account] = self.balances.get(t.debit_account, 0) - t.amount_points
            results.append(lpb.TransferResult(transfer_id=t.transfer_id, status=lpb.TRANSFER_STATUS_POSTED))
        return lpb.PostTransfersResponse(results=results)


def _start(settings: Settings, registration: Registration) -> RunningServer:
    return start_server(settings, [registration])


@dataclass
class Harness:
    stub: ingest_service_pb2_grpc.IngestServiceStub
    identity: FakeIdentity
    ledger: FakeLedger
    clock: Clock
    partner_id: str = ""
    key_id: str = ""
    secret: str = ""
    servers: list[RunningServer] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def open_account(self, region: str = "110000", consent: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)) -> str:
        number = new_account_number(region)
        self.identity.accounts[number] = False
        for category in consent:
            self.identity.consents.append((number, category, True, START - timedelta(days=60)))
        return number

    def register(self, partner_id: str = "bus-co", behaviours: tuple[str, ...] = (), rate: int = 0) -> pb.Partner:
        response = self.stub.RegisterPartner(
            pb.RegisterPartnerRequest(
                request_id=f"reg-{partner_id}",
                partner=pb.Partner(
                    partner_id=partner_id,
                    name=partner_id,
                    kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
                    allowed_behaviours=list(behaviours)
                    or ["transit_trip", "bike_km", "sorting_supervisor_day", "clean_plate", "green_appliance"],
                    allowed_regions=["110000", "310000", "330000"],
                    rate_limit_per_second=rate,
                ),
            )
        )
        self.partner_id, self.key_id, self.secret = partner_id, "k1", response.secret
        return response.partner

    def event(
        self,
        account: str,
        behaviour: str = "transit_trip",
        quantity_milli: int = 1000,
        at: datetime | None = None,
        event_id: str = "",
        region: str = "110000",
        tier: str = "",
    ) -> pb.Event:
        return pb.Event(
            event_id=event_id or f"ev-{next(self.counter)}",
            account=common_pb2.AccountRef(account_number=account),
            behaviour=behaviour,
            quantity_milli=quantity_milli,
            occurred_at=timestamp(at or self.clock.now - timedelta(minutes=1)),
            region_code=region,
            tier=tier,
        )

    def request(self, events: list[pb.Event], batch_id: str = "b") -> pb.SubmitEventsRequest:
        request = pb.SubmitEventsRequest(partner_id=self.partner_id, batch_id=batch_id, events=events)
        return sign_request(request, self.key_id, self.secret)

    def submit(self, events: list[pb.Event]) -> list[pb.EventResult]:
        return list(self.stub.SubmitEvents(self.request(events)).results)


def make_harness(database_url: str, extra: dict[str, str] | None = None, redis_url: str = "") -> Iterator[Harness]:
    # The fakes implement only what ingest calls; the rest answers UNIMPLEMENTED.
    identity, ledger, clock = FakeIdentity(), FakeLedger(), Clock()  # type: ignore[abstract]
    identity_server = _start(
        Settings(service="identity_svc"),
        Registration(identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, identity, "identity"),
    )
    ledger_server = _start(
        Settings(service="ledger_svc"),
        Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, ledger, "ledger"),
    )
    engine = make_engine(database_url)
    migrate("ingest_svc", engine)
    settings = Settings(
        service="ingest_svc",
        region_code="110000",
        redis_url=redis_url,
        extra={
            "CARBON_IDENTITY_ADDRESS": identity_server.address,
            "CARBON_LEDGER_ADDRESS": ledger_server.address,
            "CARBON_INGEST_RESUME_ON_START": "0",
            **(extra or {}),
        },
    )
    ingest = start_server(settings, ingest_server.registrations(settings, engine, clock))
    channel = grpc.insecure_channel(ingest.address)
    harness = Harness(ingest_service_pb2_grpc.IngestServiceStub(channel), identity, ledger, clock)
    harness.servers = [ingest, identity_server, ledger_server]
    try:
        yield harness
    finally:
        channel.close()
        for running in harness.servers:
            running.stop()
        engine.dispose()


@pytest.fixture
def harness(database_url: str) -> Iterator[Harness]:
    yield from make_harness(database_url)
