"""The incentives test harness: ingest's harness (ingest, the real ledger, the fake identity over real gRPC, one
clock) plus incentives_svc wired over its own schema, calling them; a test drives the follower itself."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from carbon.incentives.v1 import incentives_service_pb2 as pb
from carbon.incentives.v1 import incentives_service_pb2_grpc as pb_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from incentives_svc import server as incentives_server
from incentives_svc.clients import IdentityClient, IngestClient, LedgerClient
from incentives_svc.domain.campaigns import CampaignSpec, Scope, TargetKind, TargetRule
from incentives_svc.server import Incentives
from incentives_svc.service.eligibility import Eligibility
from incentives_svc.service.following import Following
from incentives_svc.service.payments import Payments
from service_kit.db import make_engine, migrate
from service_kit.errors import Unavailable
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from tests.ingest.ingest_harness import Harness, make_harness
from tests.service_identities import TRUST

PERSONALISATION = 10
EVERY_CATEGORY = (1, 2, 3, 4, 5, 6, 7, 8)


@dataclass
class World:
    """One region: ingest, ledger and identity (the ingest harness) and incentives, in process."""

    region: Harness
    incentives: Incentives
    stub: pb_grpc.IncentivesServiceStub
    server: RunningServer
    engine: Engine
    settings: Settings
    requests: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def now(self) -> datetime:
        return self.region.clock.now

    def resident(self, *, personalised: bool = True) -> str:
        consent = (*EVERY_CATEGORY, PERSONALISATION) if personalised else EVERY_CATEGORY
        return self.region.open_account(consent=consent)

    def revoke_personalisation(self, account: str) -> None:
        identity = self.region.fake_identity
        identity.consents.append((account, PERSONALISATION, False, self.now - timedelta(seconds=1)))

    def transit(self, account: str, *ats: datetime, behaviour: str = "transit_trip") -> None:
        """Events of `account` at these moments, accepted by ingest (the clock stands after the last)."""
        for at in ats:
            self.region.clock.now = max(self.region.clock.now, at + timedelta(minutes=5))
            results = self.region.submit([self.region.event(account, behaviour, at=at)])
            assert results[0].outcome == 1, results  # ACCEPTED

    def follow(self) -> int:
        return self.incentives.following.catch_up()

    def campaign(
        self,
        kind: TargetKind = TargetKind.EVERYONE,
        *,
        behaviour: str = "transit_trip",
        bonus_points: int = 50,
        budget_points: int = 1_000,
        days: int = 0,
        weekdays: int = 0,
        name: str = "",
    ) -> str:
        spec = CampaignSpec(
            name=name or f"{kind.name.lower()} {behaviour}",
            behaviour=behaviour,
            bonus_points=bonus_points,
            bonus_percent=0,
            target=TargetRule(kind, days, weekdays),
            starts_at=self.now - timedelta(days=60),
            ends_at=self.now + timedelta(days=30),
            budget_points=budget_points,
            scope=Scope.REGIONAL,
        )
        return self.incentives.campaigns.create(f"campaign-{next(self.requests)}", spec).campaign_id

    def offers(self, account: str) -> pb.ListOffersResponse:
        return self.stub.ListOffers(pb.ListOffersRequest(account_number=account, max_results=10))

    def accept(self, account: str, offer_id: str) -> pb.Offer:
        request_id = f"accept-{next(self.requests)}"
        request = pb.AcceptOfferRequest(request_id=request_id, account_number=account, offer_id=offer_id)
        return self.stub.AcceptOffer(request).offer

    def claim_without_paying(self) -> None:
        """Follows the events with a follower whose ledger is unreachable: the offers they fulfil are claimed (owed
        a bonus) and left unpaid, for a test to pay them as it likes."""
        ingest, identity, _ = (running.address for running in self.region.servers)
        clock = self.region.clock
        eligibility = Eligibility(self.engine, IdentityClient(identity, self.settings))
        unpaid = Payments(self.engine, LedgerClient("", self.settings), clock)
        follower = Following(self.engine, IngestClient(ingest, self.settings), eligibility, unpaid, clock)
        with pytest.raises(Unavailable):
            follower.step()

    def balance(self, account: str) -> int:
        return self.region.ledger.balance(account)

    def transfer(self, transfer_id: str) -> lpb.Transfer:
        return self.region.ledger.stub.GetTransfer(lpb.GetTransferRequest(transfer_id=transfer_id)).transfer


def make_world(database_url: str, data_dir: Path) -> Iterator[World]:
    for region in make_harness(database_url, {"CARBON_INGEST_FOLLOW_SETTLE_MS": "0"}, data_dir=data_dir):
        region.register()
        ingest, identity, ledger = (running.address for running in region.servers)
        sqlite = database_url.startswith("sqlite")
        engine = make_engine(f"sqlite:///{data_dir / 'incentives.db'}" if sqlite else database_url)
        migrate("incentives_svc", engine)
        settings = TRUST.server(
            Settings(
                service="incentives_svc",
                region_code=region.region,
                extra={
                    "CARBON_INGEST_ADDRESS": ingest,
                    "CARBON_IDENTITY_ADDRESS": identity,
                    "CARBON_LEDGER_ADDRESS": ledger,
                    "CARBON_INCENTIVES_FOLLOW_INTERVAL_MS": "0",
                },
            )
        )
        incentives = incentives_server.build(settings, engine, region.clock)
        servicer = incentives_server.IncentivesServiceServicer(incentives)
        registration = Registration(
            pb_grpc.add_IncentivesServiceServicer_to_server, servicer, incentives_server.SERVICE_NAME
        )
        running = start_server(settings, [registration])
        channel = TRUST.allowed_channel(running.address, region.region)
        try:
            yield World(region, incentives, pb_grpc.IncentivesServiceStub(channel), running, engine, settings)
        finally:
            channel.close()
            running.stop()
            engine.dispose()
