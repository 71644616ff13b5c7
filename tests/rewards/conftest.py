"""Fixtures for rewards_svc: a controllable clock, an in-memory stand-in for the ledger, migrated services, and one
region's ledger and rewards servers on real ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from carbon.ledger.v1 import ledger_service_pb2 as ledger_pb2
from carbon.ledger.v1 import ledger_service_pb2_grpc as ledger_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2_grpc as rewards_pb2_grpc
from rewards_svc.server import SERVICE_NAME, RewardsServices, RewardsServiceServicer, build_services
from rewards_svc.service.checkpoints import Checkpoint, no_checkpoint
from service_kit import db
from service_kit.accounts import new_account_number
from service_kit.errors import FailedPrecondition
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from tests.rewards.rewards_fake_ledger import FakeLedger, FakeLedgerServicer
from tests.rewards.slow_ledger import rewards_over_slow_ledger, slow_ledger  # noqa: F401  (fixtures)
from tests.service_identities import TRUST

# 2026-03-10 10:00 in Beijing time.
START = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class Crash(BaseException):
    """Stands in for the process dying at a checkpoint (BaseException: nothing on the way catches it)."""


def crash_at(step: str) -> Checkpoint:
    def checkpoint(name: str) -> None:
        if name == step:
            raise Crash(name)

    return checkpoint


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


def funded(ledger: FakeLedger, region: str, points: int) -> str:
    """A new account of the region with `points` in the fake ledger."""
    account = new_account_number(region)
    ledger.fund(account, points)
    return account


def refusal(call: object, *args: object) -> str:
    """The reason of the FailedPrecondition the call raises."""
    with pytest.raises(FailedPrecondition) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.reason


class MakeService(Protocol):
    def __call__(self, checkpoint: Checkpoint = no_checkpoint, **extra: str) -> RewardsServices: ...


@pytest.fixture
def make_service(database_url: str, ledger: FakeLedger, clock: ManualClock) -> Iterator[MakeService]:
    engine = db.make_engine(database_url)
    db.migrate("rewards_svc", engine)

    def make(checkpoint: Checkpoint = no_checkpoint, **extra: str) -> RewardsServices:
        settings = Settings(service="rewards_svc", region_code="330000", extra=extra)
        return build_services(settings, engine, ledger=ledger, clock=clock, checkpoint=checkpoint)

    yield make
    engine.dispose()


@pytest.fixture
def service(make_service: MakeService) -> RewardsServices:
    return make_service()


def real_ledger_ready() -> bool:
    """True once ledger_svc serves holds; until then the gRPC tests run against FakeLedgerServicer."""
    from ledger_svc.server import LedgerServiceServicer

    return all(name in LedgerServiceServicer.__dict__ for name in ("Hold", "CommitHold", "GetHold", "RefundTransfer"))


@dataclass
class Platform:
    """One region's ledger and rewards services, each a real gRPC server on a real port."""

    region: str
    ledger_address: str
    rewards_address: str
    ledger: ledger_pb2_grpc.LedgerServiceStub
    rewards: rewards_pb2_grpc.RewardsServiceStub
    real_ledger: bool

    def fund(self, account: str, points: int) -> None:
        response = self.ledger.PostTransfers(
            ledger_pb2.PostTransfersRequest(
                transfers=[
                    ledger_pb2.Transfer(
                        transfer_id=f"earn-{uuid.uuid4().hex}",
                        debit_account="system:issuance",
                        credit_account=account,
                        amount_points=points,
                        code=ledger_pb2.TRANSFER_CODE_EARN,
                    )
                ]
            ),
            timeout=10,
        )
        assert response.results[0].status == ledger_pb2.TRANSFER_STATUS_POSTED, response

    def available(self, account: str) -> int:
        balance = self.ledger.GetBalance(ledger_pb2.GetBalanceRequest(account=account), timeout=10).balance
        return int(balance.available_points)


class StartPlatform(Protocol):
    def __call__(
        self, region: str, ledger_url: str = "", rewards_url: str = "", serve_rewards: bool = True
    ) -> Platform: ...


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[StartPlatform]:
    cleanups: list[Callable[[], None]] = []

    def start(region: str, ledger_url: str = "", rewards_url: str = "", serve_rewards: bool = True) -> Platform:
        real = real_ledger_ready()
        ledger_settings = TRUST.server(Settings(service="ledger_svc", region_code=region, port=0, max_workers=64))
        if real:
            from ledger_svc.server import registrations as ledger_registrations

            ledger_engine = db.make_engine(ledger_url or f"sqlite:///{tmp_path / f'ledger-{region}.db'}")
            db.migrate("ledger_svc", ledger_engine)
            ledger_server = start_server(ledger_settings, ledger_registrations(ledger_settings, ledger_engine))
            cleanups.append(ledger_engine.dispose)
        else:
            fake = FakeLedgerServicer(FakeLedger())  # type: ignore[abstract]  # the rest: UNIMPLEMENTED
            name = "carbon.ledger.v1.LedgerService"
            ledger_server = start_server(
                ledger_settings, [Registration(ledger_pb2_grpc.add_LedgerServiceServicer_to_server, fake, name)]
            )
        cleanups.append(ledger_server.stop)
        ledger_channel = TRUST.allowed_channel(ledger_server.address, region)
        cleanups.append(ledger_channel.close)
        rewards_address = ""
        rewards_stub: rewards_pb2_grpc.RewardsServiceStub | None = None
        if serve_rewards:
            settings = TRUST.server(
                Settings(
                    service="rewards_svc",
                    region_code=region,
                    port=0,
                    max_workers=64,
                    extra={"CARBON_LEDGER_ADDRESS": ledger_server.address},
                )
            )
            rewards_engine = db.make_engine(
                rewards_url or f"sqlite:///{tmp_path / f'rewards-{region}.db'}", pool_size=40
            )
            db.migrate("rewards_svc", rewards_engine)
            rewards_servicer = RewardsServiceServicer(build_services(settings, rewards_engine))
            rewards_server = start_server(
                settings,
                [Registration(rewards_pb2_grpc.add_RewardsServiceServicer_to_server, rewards_servicer, SERVICE_NAME)],
            )
            cleanups.extend([rewards_engine.dispose, rewards_server.stop])
            rewards_channel = TRUST.allowed_channel(rewards_server.address, region)
            cleanups.append(rewards_channel.close)
            rewards_address = rewards_server.address
            rewards_stub = rewards_pb2_grpc.RewardsServiceStub(rewards_channel)
        return Platform(
            region,
            ledger_server.address,
            rewards_address,
            ledger_pb2_grpc.LedgerServiceStub(ledger_channel),
            rewards_stub,  # type: ignore[arg-type]
            real,
        )

    yield start
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def second_postgres_url(fresh_postgres_url: Callable[[], str]) -> str:
    """Another fresh schema, for the second service of a test (the ledger beside rewards)."""
    return fresh_postgres_url()
