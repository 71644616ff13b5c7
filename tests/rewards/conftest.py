"""Fixtures for rewards_svc: a controllable clock, an in-memory stand-in for the ledger, a migrated service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import grpc
import pytest

from rewards_svc.catalog import load_catalog
from rewards_svc.ledger_client import HoldState, HoldView, LedgerRefused, LedgerUnavailable, TransferOutcome
from rewards_svc.redemption import Checkpoint, no_checkpoint
from rewards_svc.service import RewardsService
from service_kit import db

# 2026-03-10 10:00 in Beijing time.
START = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class FakeHold:
    account: str
    amount_points: int
    state: str


@dataclass
class FakeLedger:
    """Balances, holds and transfers in memory, with the real ledger's idempotency; `down` makes it unreachable."""

    balances: dict[str, int] = field(default_factory=dict)
    holds: dict[str, FakeHold] = field(default_factory=dict)
    transfers: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _reachable(self) -> None:
        if self.down:
            raise LedgerUnavailable("ledger down (fake)")

    def fund(self, account: str, points: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + points

    def available(self, account: str) -> int:
        held = sum(h.amount_points for h in self.holds.values() if h.account == account and h.state == "PENDING")
        return self.balances.get(account, 0) - held

    def hold(self, hold_id: str, account: str, amount_points: int, timeout_s: int, reference: str) -> HoldView:
        with self.lock:
            self._reachable()
            if hold_id not in self.holds:
                if self.available(account) < amount_points:
                    raise LedgerRefused(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "INSUFFICIENT_POINTS",
                        "not enough points",
                        {"missing_points": str(amount_points - self.available(account))},
                    )
                self.holds[hold_id] = FakeHold(account, amount_points, HoldState.PENDING)
            found = self.holds[hold_id]
            return HoldView(hold_id, found.state, found.amount_points)

    def commit_hold(self, hold_id: str, credit_account: str) -> HoldView:
        with self.lock:
            self._reachable()
            found = self.holds[hold_id]
            if found.state == HoldState.PENDING:
                found.state = HoldState.COMMITTED
                self.balances[found.account] -= found.amount_points
                self.fund(credit_account, found.amount_points)
                self.transfers[hold_id] = (found.account, credit_account, found.amount_points)
            elif found.state != HoldState.COMMITTED:
                raise LedgerRefused(grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_PENDING", found.state, {})
            return HoldView(hold_id, found.state, found.amount_points)

    def release_hold(self, hold_id: str) -> HoldView:
        with self.lock:
            self._reachable()
            found = self.holds[hold_id]
            if found.state == HoldState.PENDING:
                found.state = HoldState.RELEASED
            return HoldView(hold_id, found.state, found.amount_points)

    def get_hold(self, hold_id: str) -> HoldView | None:
        with self.lock:
            self._reachable()
            found = self.holds.get(hold_id)
            return None if found is None else HoldView(hold_id, found.state, found.amount_points)

    def refund(self, refund_id: str, original_transfer_id: str, amount_points: int, reason: str) -> TransferOutcome:
        with self.lock:
            self._reachable()
            if refund_id not in self.transfers:
                debit, credit, _amount = self.transfers[original_transfer_id]
                self.transfers[refund_id] = (credit, debit, amount_points)
                self.balances[credit] -= amount_points
                self.fund(debit, amount_points)
            return TransferOutcome(True)

    def donate(self, transfer_id: str, account: str, amount_points: int, reference: str) -> TransferOutcome:
        with self.lock:
            self._reachable()
            if transfer_id not in self.transfers:
                if self.available(account) < amount_points:
                    return TransferOutcome(False, "INSUFFICIENT_POINTS", "not enough points")
                self.transfers[transfer_id] = (account, "system:donation", amount_points)
                self.balances[account] -= amount_points
                self.fund("system:donation", amount_points)
            return TransferOutcome(True)

    def available_points(self, account: str) -> int:
        with self.lock:
            self._reachable()
            return self.available(account)


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


class MakeService(Protocol):
    def __call__(self, checkpoint: Checkpoint = no_checkpoint) -> RewardsService: ...


@pytest.fixture
def make_service(database_url: str, ledger: FakeLedger, clock: ManualClock) -> Iterator[MakeService]:
    engine = db.make_engine(database_url)
    db.migrate("rewards_svc", engine)

    def make(checkpoint: Checkpoint = no_checkpoint) -> RewardsService:
        service = RewardsService(engine, ledger, "330000", clock, checkpoint=checkpoint)
        service.seed(load_catalog())
        return service

    yield make
    engine.dispose()


@pytest.fixture
def service(make_service: MakeService) -> RewardsService:
    return make_service()
