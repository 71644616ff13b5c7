"""The ingest test harness: an in-process ingest server over SQLite or PostgreSQL, crediting the real ledger_svc
(in-process, its own SQLite file or the same PostgreSQL schema: its tables are disjoint from ingest's), and either the
real identity_svc or a fake identity (real gRPC, minimal semantics: consent history by time) for tests that script
consent. FakeLedger stays for tests that need a ledger that misbehaves (down, slow)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from identity_svc.domain.real_name import id_check_char
from identity_svc.server import IdentityServiceServicer, build_services
from ingest_svc import server as ingest_server
from ledger_svc.server import registrations as ledger_registrations
from service_kit.accounts import new_account_number
from service_kit.db import make_engine, migrate
from service_kit.partner_signing import sign_request
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Secret, Settings
from service_kit.wire import to_timestamp
from tests.service_identities import TRUST

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
        self.calls: dict[str, int] = {"resolve": 0, "consent": 0, "account": 0}
        self.minors: set[str] = set()  # accounts GetAccount answers as a minor's (incentives never profiles them)

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

    def GetAccount(self, request: ipb.GetAccountRequest, context: grpc.ServicerContext) -> ipb.GetAccountResponse:
        self.calls["account"] += 1
        number = request.account_number
        if number not in self.accounts:
            context.abort(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
        state = ipb.ACCOUNT_STATE_CLOSED if self.accounts[number] else ipb.ACCOUNT_STATE_OPEN
        account = ipb.Account(account_number=number, region_code=number[:6], state=state, minor=number in self.minors)
        return ipb.GetAccountResponse(account=account)

    def CheckConsents(self, request: ipb.CheckConsentsRequest, context: object) -> ipb.CheckConsentsResponse:
        self.calls["consent"] += 1
        answers = []
        for q in request.questions:
            if q.account_number not in self.accounts or self.accounts[q.account_number]:
                # As the real identity service answers: the account itself first (unknown, or closed).
                reason = "UNKNOWN_ACCOUNT" if q.account_number not in self.accounts else "ACCOUNT_CLOSED"
                answers.append(ipb.ConsentAnswer(allowed=False, reason=reason))
                continue
            at = q.at.ToDatetime(tzinfo=UTC)
            history = [c for c in self.consents if c[0] == q.account_number and c[1] == q.category and c[3] <= at]
            allowed = bool(history) and history[-1][2]
            reason = "" if allowed else ("CONSENT_REVOKED" if history else "CONSENT_MISSING")
            answers.append(ipb.ConsentAnswer(allowed=allowed, reason=reason))
        return ipb.CheckConsentsResponse(answers=answers)

    def CheckConsentColumns(
        self, request: ipb.CheckConsentColumnsRequest, context: object
    ) -> ipb.CheckConsentColumnsResponse:
        questions = [
            ipb.ConsentQuestion(
                account_number=number,
                category=category,
                at=Timestamp(seconds=at_us // 1_000_000, nanos=at_us % 1_000_000 * 1000),
            )
            for number, category, at_us in zip(request.account_numbers, request.categories, request.at_us, strict=True)
        ]
        answers = self.CheckConsents(ipb.CheckConsentsRequest(questions=questions), context).answers
        return ipb.CheckConsentColumnsResponse(
            allowed=[a.allowed for a in answers], reasons=[a.reason for a in answers]
        )


class FakeLedger(ledger_service_pb2_grpc.LedgerServiceServicer):
    """A ledger that can misbehave: `down` answers UNAVAILABLE; `gate` (when set) holds every call until opened."""

    def __init__(self) -> None:
        self.transfers: dict[str, bytes] = {}
        self.balances: dict[str, int] = {}
        self.calls = 0
        self.down = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.finished = threading.Event()  # set when a PostTransfers (or PostCredits) call has posted its transfers
        self._lock = threading.Lock()

    def PostTransfers(
        self, request: lpb.PostTransfersRequest, context: grpc.ServicerContext
    ) -> lpb.PostTransfersResponse:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "ledger is down")
        with self._lock:
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
        self.finished.set()
        return lpb.PostTransfersResponse(results=results)

    def PostCredits(self, request: lpb.PostCreditsRequest, context: grpc.ServicerContext) -> lpb.PostCreditsResponse:
        return credit_columns(self.PostTransfers(credit_transfers(request), context))


def credit_transfers(request: lpb.PostCreditsRequest) -> lpb.PostTransfersRequest:
    """PostCredits' columns as the Transfer messages they stand for."""
    return lpb.PostTransfersRequest(
        transfers=[
            lpb.Transfer(
                transfer_id=transfer_id,
                debit_account=group.debit_account,
                credit_account=account,
                amount_points=points,
                code=group.code,
                earned_at=Timestamp(seconds=at_us // 1_000_000, nanos=at_us % 1_000_000 * 1000) if at_us else None,
                reference=reference,
                co2e_grams=grams,
                metadata=group.metadata,
            )
            for group in request.groups
            for transfer_id, account, points, at_us, reference, grams in zip(
                group.transfer_ids,
                group.credit_accounts,
                group.amount_points,
                group.earned_at_us,
                group.references,
                group.co2e_grams,
                strict=True,
            )
        ]
    )


def credit_columns(response: lpb.PostTransfersResponse) -> lpb.PostCreditsResponse:
    """PostTransfers' results as PostCredits' columns."""
    return lpb.PostCreditsResponse(
        statuses=[r.status for r in response.results],
        lot_ids=[r.lots[0].lot_id if r.lots else "" for r in response.results],
        posted_at_us=[r.posted_at.seconds * 1_000_000 + r.posted_at.nanos // 1000 for r in response.results],
        failures=[
            lpb.CreditFailure(index=index, reason=r.failure_reason, message=r.failure_message)
            for index, r in enumerate(response.results)
            if r.status == lpb.TRANSFER_STATUS_FAILED
        ],
    )


class CountingLedger:
    """The real ledger servicer, counting PostCredits calls (ingest must make one per batch, never one per event)."""

    def __init__(self, servicer: ledger_service_pb2_grpc.LedgerServiceServicer) -> None:
        self._servicer = servicer
        self.calls = 0

    def PostCredits(self, request: lpb.PostCreditsRequest, context: grpc.ServicerContext) -> lpb.PostCreditsResponse:
        self.calls += 1
        return self._servicer.PostCredits(request, context)  # type: ignore[arg-type,return-value]

    def __getattr__(self, name: str) -> object:
        return getattr(self._servicer, name)


def start_real_ledger(database_url: str, region: str, clock: Clock) -> tuple[RunningServer, CountingLedger, object]:
    """ledger_svc in-process on its own port, on the given database, with the tests' clock."""
    settings = TRUST.server(Settings(service="ledger_svc", region_code=region))
    engine = make_engine(database_url)
    migrate("ledger_svc", engine)
    registration = ledger_registrations(settings, engine, clock)[0]
    counting = CountingLedger(registration.servicer)
    server = start_server(settings, [Registration(registration.add_to_server, counting, registration.full_name)])
    return server, counting, engine


class OpeningClock:
    """The real identity's clock: the system time, except while the harness opens an account "in the past" (identity
    refuses consent dated before the opening, and the harness grants consent from 60 days before START)."""

    def __init__(self) -> None:
        self.opening_at: datetime | None = None

    def __call__(self) -> datetime:
        return self.opening_at or datetime.now(UTC)


def start_real_identity(
    data_dir: Path, region: str, redis_url: str = "", clock: OpeningClock | None = None
) -> tuple[RunningServer, object]:
    """identity_svc in-process on SQLite in `data_dir` (embedded keys generated there), its consent cache in Redis
    when a URL is given."""
    settings = TRUST.server(
        Settings(service="identity_svc", region_code=region, data_dir=data_dir, redis_url=redis_url)
    )
    engine = make_engine(settings.effective_database_url())
    migrate("identity_svc", engine)
    servicer = IdentityServiceServicer(build_services(settings, engine, clock=clock or OpeningClock()))
    registration = Registration(identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, servicer, "identity")
    return start_server(settings, [registration]), engine


class Books:
    """What the real ledger says: balances (GetBalance) and whether its books balance (CheckConservation)."""

    def __init__(self, stub: ledger_service_pb2_grpc.LedgerServiceStub, counting: CountingLedger) -> None:
        self.stub = stub
        self._counting = counting

    @property
    def calls(self) -> int:
        return self._counting.calls

    def balance(self, account: str) -> int:
        return int(self.stub.GetBalance(lpb.GetBalanceRequest(account=account)).balance.total_points)

    def issued(self) -> int:
        return int(self.stub.CheckConservation(lpb.CheckConservationRequest()).issued_points)

    def assert_conserved(self) -> None:
        check = self.stub.CheckConservation(lpb.CheckConservationRequest())
        assert check.balanced and not check.problems, check


@dataclass
class Harness:
    stub: ingest_service_pb2_grpc.IngestServiceStub
    identity: FakeIdentity | None  # None: the real identity server (see identity_stub)
    ledger: Books
    clock: Clock
    region: str = "110000"
    identity_stub: identity_service_pb2_grpc.IdentityServiceStub | None = None
    partner_id: str = ""
    key_id: str = ""
    secret: str = ""
    servers: list[RunningServer] = field(default_factory=list)
    identity_clock: OpeningClock = field(default_factory=OpeningClock)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    people: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    @property
    def fake_identity(self) -> FakeIdentity:
        assert self.identity is not None, "this harness runs the real identity server"
        return self.identity

    def open_account(
        self, region: str = "", consent: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8), binding: str = ""
    ) -> str:
        region = region or self.region
        since = START - timedelta(days=60)
        if self.identity is not None:
            number = new_account_number(region)
            self.identity.accounts[number] = False
            for category in consent:
                self.identity.consents.append((number, category, True, since))
            return number
        assert self.identity_stub is not None
        person = next(self.people)
        first17 = f"{region}1980{person // 28 % 12 + 1:02d}{person % 28 + 1:02d}{person % 1000:03d}"
        self.identity_clock.opening_at = since
        opened = self.identity_stub.OpenAccount(
            ipb.OpenAccountRequest(
                request_id=f"open-{person}",
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                name="李明",
                id_number=first17 + id_check_char(first17),
                phone_number=f"138{person:08d}",
                binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=binding or f"user-{person}"),
            )
        )
        self.identity_clock.opening_at = None
        number = str(opened.account.account_number)
        for category in consent:
            self.identity_stub.GrantConsent(
                ipb.GrantConsentRequest(
                    request_id=f"consent-{person}-{category}",
                    account_number=number,
                    category=category,  # type: ignore[arg-type]
                    channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                    recorded_by="alipay",
                    effective_at=to_timestamp(since),
                )
            )
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
        region: str = "",
        tier: str = "",
    ) -> pb.Event:
        return pb.Event(
            event_id=event_id or f"ev-{next(self.counter)}",
            account=common_pb2.AccountRef(account_number=account),
            behaviour=behaviour,
            quantity_milli=quantity_milli,
            occurred_at=to_timestamp(at or self.clock.now - timedelta(minutes=1)),
            region_code=region or self.region,
            tier=tier,
        )

    def request(self, events: list[pb.Event], batch_id: str = "b") -> pb.SubmitEventsRequest:
        request = pb.SubmitEventsRequest(partner_id=self.partner_id, batch_id=batch_id, events=events)
        return sign_request(request, self.key_id, self.secret)

    def submit(self, events: list[pb.Event]) -> list[pb.EventResult]:
        return list(self.stub.SubmitEvents(self.request(events)).results)


def make_harness(
    database_url: str,
    extra: dict[str, str] | None = None,
    redis_url: str = "",
    *,
    data_dir: Path,
    region: str = "110000",
    real_identity: bool = False,
    clock: Clock | None = None,
    secrets: dict[str, str] | None = None,
) -> Iterator[Harness]:
    """ingest + the real ledger (+ the real identity when asked; else the fake) for one test; ingest and the real
    identity use Redis when a URL is given."""
    clock = clock or Clock()
    harness_identity_clock = OpeningClock()
    engines: list[object] = []
    identity: FakeIdentity | None = None
    if real_identity:
        identity_server, identity_engine = start_real_identity(
            data_dir / "identity", region, redis_url, harness_identity_clock
        )
        engines.append(identity_engine)
    else:
        identity = FakeIdentity()  # type: ignore[abstract]  # implements only what ingest calls
        identity_server = start_server(
            TRUST.server(Settings(service="identity_svc", region_code=region)),
            [Registration(identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, identity, "identity")],
        )
    sqlite = database_url.startswith("sqlite")
    ledger_url = f"sqlite:///{data_dir / 'ledger.db'}" if sqlite else database_url
    ledger_server, counting, ledger_engine = start_real_ledger(ledger_url, region, clock)
    engines.append(ledger_engine)
    engine = make_engine(database_url)
    migrate("ingest_svc", engine)
    settings = TRUST.server(
        Settings(
            service="ingest_svc",
            region_code=region,
            redis_url=redis_url,
            extra={
                "CARBON_IDENTITY_ADDRESS": identity_server.address,
                "CARBON_LEDGER_ADDRESS": ledger_server.address,
                "CARBON_INGEST_RESUME_ON_START": "0",
                **(extra or {}),
            },
            secrets={name: Secret(value) for name, value in (secrets or {}).items()},
        )
    )
    ingest = start_server(settings, ingest_server.registrations(settings, engine, clock))
    channels = [TRUST.allowed_channel(s.address, region) for s in (ingest, ledger_server, identity_server)]
    harness = Harness(
        ingest_service_pb2_grpc.IngestServiceStub(channels[0]),
        identity,
        Books(ledger_service_pb2_grpc.LedgerServiceStub(channels[1]), counting),
        clock,
        region,
        identity_service_pb2_grpc.IdentityServiceStub(channels[2]),
    )
    harness.servers = [ingest, identity_server, ledger_server]
    harness.identity_clock = harness_identity_clock
    try:
        yield harness
        harness.ledger.assert_conserved()
    finally:
        for channel in channels:
            channel.close()
        for running in harness.servers:
            running.stop()
        engine.dispose()
        for other in engines:
            other.dispose()  # type: ignore[attr-defined]


def real_clock() -> Clock:
    """The real identity dates consent on the system clock: start 40 days back so a test can walk a month forward."""
    return Clock(datetime.now(UTC) - timedelta(days=40))
