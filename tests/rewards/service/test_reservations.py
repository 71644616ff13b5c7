"""Redemptions reserved in groups (docs/adr/0304): one transaction for the requests of one reward that arrive together,
each keeping the outcome it would have had alone, in arrival order."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import grpc
import pytest

from rewards_svc.clients import HoldBatchUnsupported, HoldOrder, HoldView, LedgerRefused
from rewards_svc.domain.redemption import RedeemRequest, Redemption, RedemptionState
from rewards_svc.server import RewardsServices, build_services
from rewards_svc.service.reservations import Reservations, Reserved
from service_kit import db
from service_kit.accounts import REDEMPTION_ACCOUNT, new_account_number
from service_kit.errors import FailedPrecondition, NotFound
from service_kit.settings import Settings
from tests.rewards.conftest import ManualClock, funded
from tests.rewards.rewards_fake_ledger import FakeLedger
from tests.rewards.test_lock_order import all_at_once, unexpected

REGION = "330000"
COUNTED = "cinema-ticket-reduction"  # at most 2 per account per month
DAILY = "museum-free-reservation"  # at most 1 per account per day


@dataclasses.dataclass
class Setup:
    services: RewardsServices
    reservations: Reservations


@pytest.fixture
def setup(database_url: str, ledger: FakeLedger, clock: ManualClock) -> Iterator[Setup]:
    engine = db.make_engine(database_url, pool_size=40)
    db.migrate("rewards_svc", engine)
    services = build_services(Settings(service="rewards_svc", region_code=REGION), engine, ledger=ledger, clock=clock)
    yield Setup(services, Reservations(engine, clock, 600, REDEMPTION_ACCOUNT))
    engine.dispose()


def request(request_id: str, account: str, reward_id: str, quantity: int = 1) -> RedeemRequest:
    return RedeemRequest(request_id, account, reward_id, quantity, REGION)


def set_stock(services: RewardsServices, reward_id: str, stock: int, **changes: object) -> None:
    current = services.catalog.get_reward(reward_id)
    changed = dataclasses.replace(current, stock=stock, **changes)  # type: ignore[arg-type]
    services.catalog.update_reward(f"stock-{reward_id}-{stock}", changed, ["stock", *changes])


def reason(outcome: object) -> str:
    assert isinstance(outcome, FailedPrecondition), outcome
    return outcome.reason


def test_a_group_takes_the_stock_in_arrival_order_and_refuses_the_rest(setup: Setup) -> None:
    set_stock(setup.services, COUNTED, 3, limit_per_month=0)
    accounts = [new_account_number(REGION) for _ in range(5)]
    outcomes = setup.reservations.reserve_group(
        [request(f"r{n}", account, COUNTED) for n, account in enumerate(accounts)]
    )
    assert [isinstance(outcome, Reserved) for outcome in outcomes] == [True, True, True, False, False]
    assert [reason(outcome) for outcome in outcomes[3:]] == ["OUT_OF_STOCK", "OUT_OF_STOCK"]
    assert setup.services.catalog.get_reward(COUNTED).stock == 0
    # Each one's own record: the reserved ones with their vouchers, the refused ones stored FAILED with the reason.
    reserved = [outcome for outcome in outcomes if isinstance(outcome, Reserved)]
    assert all(len(item.vouchers) == 1 and item.redemption.state == RedemptionState.PENDING for item in reserved)
    refused = setup.services.redemptions.find(request_id="r4")
    assert refused is not None and (refused.state, refused.failure_reason) == (RedemptionState.FAILED, "OUT_OF_STOCK")


def test_a_quantity_that_does_not_fit_is_refused_and_a_later_smaller_one_still_served(setup: Setup) -> None:
    set_stock(setup.services, COUNTED, 3, limit_per_month=0)
    first, second, third = (new_account_number(REGION) for _ in range(3))
    outcomes = setup.reservations.reserve_group(
        [request("a", first, COUNTED, 2), request("b", second, COUNTED, 2), request("c", third, COUNTED, 1)]
    )
    assert isinstance(outcomes[0], Reserved) and reason(outcomes[1]) == "OUT_OF_STOCK"
    assert isinstance(outcomes[2], Reserved)
    assert setup.services.catalog.get_reward(COUNTED).stock == 0


def test_limits_count_the_units_earlier_members_of_the_group_took(setup: Setup) -> None:
    account, other = new_account_number(REGION), new_account_number(REGION)
    outcomes = setup.reservations.reserve_group(
        [request("m1", account, DAILY), request("m2", account, DAILY), request("m3", other, DAILY)]
    )
    assert isinstance(outcomes[0], Reserved) and reason(outcomes[1]) == "LIMIT_REACHED"
    assert isinstance(outcomes[2], Reserved)


def test_a_request_id_twice_in_a_group_or_taken_before_gets_the_redemption_stored_first(setup: Setup) -> None:
    set_stock(setup.services, COUNTED, 100)
    account = new_account_number(REGION)
    (earlier,) = setup.reservations.reserve_group([request("old", account, COUNTED)])
    assert isinstance(earlier, Reserved)
    outcomes = setup.reservations.reserve_group(
        [request("new", account, COUNTED), request("new", account, COUNTED), request("old", account, COUNTED)]
    )
    first, twin, retry = outcomes
    assert isinstance(first, Reserved)
    assert isinstance(twin, Redemption) and twin.redemption_id == first.redemption.redemption_id
    assert isinstance(retry, Redemption) and retry.redemption_id == earlier.redemption.redemption_id
    assert setup.services.catalog.get_reward(COUNTED).stock == 98  # the twin took none


def test_an_unknown_reward_is_refused_to_every_member_but_a_retry(setup: Setup) -> None:
    account = new_account_number(REGION)
    outcomes = setup.reservations.reserve_group([request("x1", account, "no-such"), request("x2", account, "no-such")])
    assert all(isinstance(outcome, NotFound) for outcome in outcomes)


@pytest.mark.postgres
def test_concurrent_buyers_of_a_reward_with_little_stock_never_oversell(
    postgres_url: str, ledger: FakeLedger, clock: ManualClock
) -> None:
    engine = db.make_engine(postgres_url, pool_size=40)
    db.migrate("rewards_svc", engine)
    services = build_services(Settings(service="rewards_svc", region_code=REGION), engine, ledger=ledger, clock=clock)
    set_stock(services, COUNTED, 10, limit_per_month=0)
    buyers = [funded(ledger, REGION, 5000) for _ in range(32)]
    pending = iter(enumerate(buyers))

    def buy() -> object:
        index, account = next(pending)
        return services.redemptions.redeem(f"b{index}", account, COUNTED, 1, REGION)

    answers = all_at_once(buy, len(buyers))
    engine.dispose()
    assert unexpected(answers) == []
    completed = [answer for answer in answers if isinstance(answer, Redemption)]
    assert len(completed) == 10 and all(answer.state == RedemptionState.COMPLETED for answer in completed)
    assert {reason(answer) for answer in answers if not isinstance(answer, Redemption)} == {"OUT_OF_STOCK"}
    assert services.catalog.get_reward(COUNTED).stock == 0
    assert sorted(ledger.balances[account] for account in buyers) == [3000] * 10 + [5000] * 22


class LedgerWithoutHoldBatch(FakeLedger):
    """A ledger older than HoldBatch: the batch call is UNIMPLEMENTED there."""

    batch_calls: int = 0

    def hold_many(self, orders: Sequence[HoldOrder]) -> list[HoldView | LedgerRefused]:
        self.batch_calls += 1
        raise HoldBatchUnsupported()


def test_a_ledger_without_hold_batch_gets_each_hold_alone_from_then_on(database_url: str, clock: ManualClock) -> None:
    ledger = LedgerWithoutHoldBatch()
    engine = db.make_engine(database_url)
    db.migrate("rewards_svc", engine)
    services = build_services(Settings(service="rewards_svc", region_code=REGION), engine, ledger=ledger, clock=clock)
    account = funded(ledger, REGION, 10_000)
    first = services.redemptions.redeem("h1", account, COUNTED, 1, REGION)
    second = services.redemptions.redeem("h2", account, COUNTED, 1, REGION)
    engine.dispose()
    assert (first.state, second.state) == (RedemptionState.COMPLETED, RedemptionState.COMPLETED)
    assert ledger.batch_calls == 1 and ledger.balances[account] == 6000


class LedgerRefusingHoldBatch(FakeLedger):
    """A ledger that refuses a whole HoldBatch call for good, placing none of its Holds."""

    def hold_many(self, orders: Sequence[HoldOrder]) -> list[HoldView | LedgerRefused]:
        raise LedgerRefused(grpc.StatusCode.FAILED_PRECONDITION, "BATCH_REFUSED", "refused", {})


def test_a_refused_hold_batch_unwinds_each_of_its_redemptions(database_url: str, clock: ManualClock) -> None:
    ledger = LedgerRefusingHoldBatch()
    engine = db.make_engine(database_url)
    db.migrate("rewards_svc", engine)
    services = build_services(Settings(service="rewards_svc", region_code=REGION), engine, ledger=ledger, clock=clock)
    set_stock(services, COUNTED, 100, limit_per_month=0)
    account = funded(ledger, REGION, 10_000)
    with pytest.raises(FailedPrecondition) as refused:
        services.redemptions.redeem("f1", account, COUNTED, 1, REGION)
    stored = services.redemptions.find(request_id="f1")
    engine.dispose()
    assert refused.value.reason == "BATCH_REFUSED"
    assert stored is not None and (stored.state, stored.failure_reason) == (RedemptionState.FAILED, "BATCH_REFUSED")
    assert services.catalog.get_reward(COUNTED).stock == 100 and ledger.balances[account] == 10_000


@pytest.mark.postgres
def test_holds_sent_together_keep_their_own_refusals(postgres_url: str, ledger: FakeLedger, clock: ManualClock) -> None:
    engine = db.make_engine(postgres_url, pool_size=40)
    db.migrate("rewards_svc", engine)
    services = build_services(Settings(service="rewards_svc", region_code=REGION), engine, ledger=ledger, clock=clock)
    set_stock(services, COUNTED, 100, limit_per_month=0)
    rich = [funded(ledger, REGION, 5000) for _ in range(16)]
    poor = [funded(ledger, REGION, 100) for _ in range(16)]
    pending = iter(enumerate(rich + poor))

    def buy() -> object:
        index, account = next(pending)
        return services.redemptions.redeem(f"p{index}", account, COUNTED, 1, REGION)

    answers = all_at_once(buy, 32)
    engine.dispose()
    assert unexpected(answers) == []
    assert sum(isinstance(answer, Redemption) for answer in answers) == 16
    assert {reason(answer) for answer in answers if not isinstance(answer, Redemption)} == {"INSUFFICIENT_POINTS"}
    assert services.catalog.get_reward(COUNTED).stock == 100 - 16  # the refused ones' stock came back
    assert [ledger.balances[account] for account in rich] == [3000] * 16
    assert [ledger.balances[account] for account in poor] == [100] * 16
