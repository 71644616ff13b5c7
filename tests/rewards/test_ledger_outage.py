"""Redeem through a ledger outage and a Hold that lands late, against a real ledger_svc (issue 14, defect 6): the
customer's retry under the same request id finishes the redemption within the retry window, and a hold that lands
after its redemption was unwound is released by the next recovery pass, not after the hold's timeout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.server import RewardsServices
from service_kit.accounts import new_account_number
from service_kit.errors import FailedPrecondition, Unavailable
from tests.rewards.conftest import ManualClock
from tests.rewards.slow_ledger import IMPATIENT_S, PATIENT_S, MakeRewards, SlowLedger

LATE_S = IMPATIENT_S + 1.5
WINDOW_S = 120
REWARD = "shanghai-health-check"  # 7200 points, counted stock


@pytest.fixture
def make_rewards(rewards_over_slow_ledger: MakeRewards) -> Iterator[MakeRewards]:
    """Rewards with a retry window of WINDOW_S unless a test says otherwise."""

    def make(deadline_s: float = PATIENT_S, **extra: str) -> RewardsServices:
        return rewards_over_slow_ledger(deadline_s, **{"CARBON_HOLD_RETRY_WINDOW_S": str(WINDOW_S), **extra})

    yield make


def funded(ledger: SlowLedger, points: int) -> str:
    account = new_account_number("310000")
    ledger.fund(account, points, f"earn-{account}")
    return account


def test_the_customer_retrying_through_an_outage_gets_the_redemption(
    make_rewards: MakeRewards, slow_ledger: SlowLedger
) -> None:
    rewards = make_rewards()
    account = funded(slow_ledger, 7200)
    slow_ledger.faults.cut_off.update({"Hold", "GetHold"})
    for _ in range(3):  # the ledger is down: the same request id keeps answering "pending", never "failed"
        with pytest.raises(Unavailable) as pending:
            rewards.redemptions.redeem("r1", account, REWARD, 1, "310000")
        assert pending.value.reason == "REDEMPTION_PENDING"
    slow_ledger.faults.cut_off = {"Hold"}  # GetHold answers "no hold": the outage kept the Hold out
    with pytest.raises(Unavailable):
        rewards.redemptions.redeem("r1", account, REWARD, 1, "310000")
    slow_ledger.faults.heal()
    done = rewards.redemptions.redeem("r1", account, REWARD, 1, "310000")
    assert done.state == RedemptionState.COMPLETED and len(done.vouchers) == 1
    assert slow_ledger.balance(account).total_points == 0
    assert rewards.catalog.get_reward(REWARD).stock == 1999
    slow_ledger.verify()


def test_recovery_finishes_a_redemption_the_outage_left_pending(
    make_rewards: MakeRewards, slow_ledger: SlowLedger, clock: ManualClock
) -> None:
    rewards = make_rewards()
    account = funded(slow_ledger, 7200)
    slow_ledger.faults.cut_off.add("Hold")
    with pytest.raises(Unavailable):
        rewards.redemptions.redeem("r1", account, REWARD, 1, "310000")
    slow_ledger.faults.heal()
    clock.advance(seconds=WINDOW_S / 2)
    assert rewards.recovery.recover(WINDOW_S / 4).redemptions_resolved == 1
    done = rewards.redemptions.find(request_id="r1")
    assert done is not None and done.state == RedemptionState.COMPLETED
    assert slow_ledger.balance(account).total_points == 0


def test_past_the_window_the_redemption_fails_and_the_stock_comes_back(
    make_rewards: MakeRewards, slow_ledger: SlowLedger, clock: ManualClock
) -> None:
    rewards = make_rewards()
    account = funded(slow_ledger, 7200)
    slow_ledger.faults.cut_off.add("Hold")
    with pytest.raises(Unavailable):
        rewards.redemptions.redeem("r1", account, REWARD, 1, "310000")
    slow_ledger.faults.heal()
    holds_sent = slow_ledger.faults.calls["Hold"]
    clock.advance(seconds=WINDOW_S)
    with pytest.raises(FailedPrecondition, match="HOLD_NOT_PLACED"):
        rewards.redemptions.redeem("r1", account, REWARD, 1, "310000")
    assert rewards.catalog.get_reward(REWARD).stock == 2000
    assert slow_ledger.balance(account).available_points == 7200
    assert slow_ledger.faults.calls["Hold"] == holds_sent  # past the window no Hold is sent again


def test_a_hold_landing_after_its_redemption_was_unwound_is_released_by_the_next_pass(
    make_rewards: MakeRewards, slow_ledger: SlowLedger
) -> None:
    rewards = make_rewards(CARBON_HOLD_RETRY_WINDOW_S="0")
    account = funded(slow_ledger, 7200)
    slow_ledger.faults.arrive_late["Hold"] = LATE_S  # lands after rewards gave up, looked, and unwound
    impatient = make_rewards(IMPATIENT_S, CARBON_HOLD_RETRY_WINDOW_S="0")
    with pytest.raises(FailedPrecondition, match="HOLD_NOT_PLACED"):
        impatient.redemptions.redeem("r1", account, REWARD, 1, "310000")
    slow_ledger.faults.settle()
    slow_ledger.faults.heal()
    redemption = rewards.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.FAILED
    landed = slow_ledger.hold(redemption.hold_id)
    assert landed is not None and slow_ledger.balance(account).available_points == 0  # the points are locked
    assert rewards.recovery.recover(60).orphaned_holds_released == 1
    assert slow_ledger.balance(account).available_points == 7200
    assert rewards.recovery.recover(60).orphaned_holds_released == 0  # seen finished: no longer watched
    slow_ledger.verify()
